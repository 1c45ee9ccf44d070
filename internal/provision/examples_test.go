package provision

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"go.yaml.in/yaml/v3"
)

// The example templates in the repository's top-level testdata/templates are documentation
// operators copy (README, "Example unattended templates"). These tests parse and render every
// one for a machine and check the result is a well-formed file of its kind that carries the
// machine's values intact — so a broken example fails CI, not an install.

const examplesDir = "../../testdata/templates"

// exampleKind maps an example's file name to its template kind by the suffix naming the file
// fleetboot serves it as.
func exampleKind(name string) string {
	for _, k := range []string{KindKickstart, KindPreseed, KindAutoinstall, KindAutoYaST, KindAnswer} {
		if strings.HasSuffix(name, "."+Kinds[k]) {
			return k
		}
	}
	return ""
}

// exampleVars is a machine whose values need escaping in every format: an SSH key comment with
// quotes, XML and shell metacharacters.
func exampleVars() Vars {
	done := "http://192.0.2.1:8080/boot/done/52-54-00-12-34-56"
	return Vars{
		Hostname: "web-01", MAC: "52:54:00:12:34:56", MACHyphen: "52-54-00-12-34-56", IP: "192.0.2.50",
		ServerURL: "http://192.0.2.1:8080", DoneURL: done, DoneCommand: doneCommand(done),
		ProgressURL:   "http://192.0.2.1:8080/boot/progress/52-54-00-12-34-56",
		UnattendedURL: "http://192.0.2.1:8080/unattended/52-54-00-12-34-56/", ISOURL: "http://192.0.2.1:8080/isos/0123456789abcdef",
		Profile: "example",
		SSHKeys: []string{
			"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd1f2Zm9rbGVldGJvb3QtZXhhbXBsZS1rZXktMQ ops@example",
			`ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 "night shift" <noc&ops> it's: on-call #2`,
		},
		Vars: map[string]string{
			"timezone": "Europe/Berlin", "root_password_hash": "$6$rounds=4096$salt$abcdefghijklmnopqrstuv",
			"password_hash": "$6$salt$0123456789abcdefghij", "mirror_host": "mirror.example.org",
		},
	}
}

func TestExampleTemplatesRenderToValidFiles(t *testing.T) {
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		kind := exampleKind(e.Name())
		if kind == "" {
			t.Errorf("%s: name does not end in a kind's file name (%v)", e.Name(), Kinds)
			continue
		}
		seen[kind] = true
		t.Run(e.Name(), func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(examplesDir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			// What a profile save does.
			if err := Check(kind, string(body)); err != nil {
				t.Fatalf("a profile with this example would be refused: %v", err)
			}
			tmpl, err := Parse(kind, string(body))
			if err != nil {
				t.Fatal(err)
			}
			v := exampleVars()
			v.ProgressHooks = progressHooks(kind, v.ProgressURL)
			out, err := Render(tmpl, v)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(out, []byte("{{")) || bytes.Contains(out, []byte("<no value>")) {
				t.Errorf("unrendered template text:\n%s", out)
			}
			switch kind {
			case KindKickstart:
				checkKickstart(t, out, v)
			case KindPreseed:
				checkPreseed(t, out, v)
			case KindAutoinstall:
				checkAutoinstall(t, out, v)
			case KindAutoYaST:
				checkAutoYaST(t, out, v)
			case KindAnswer:
				checkAnswer(t, out, v)
			}
			if t.Failed() {
				t.Logf("rendered:\n%s", out)
			}
		})
	}
	for _, k := range []string{KindKickstart, KindPreseed, KindAutoinstall, KindAutoYaST, KindAnswer} {
		if !seen[k] {
			t.Errorf("no example template of kind %s in %s", k, examplesDir)
		}
	}
}

// kickstartCommands are the commands of pykickstart's RHEL 9 / Fedora handlers.
var kickstartCommands = strings.Fields(`authselect autopart autostep bootloader btrfs cdrom clearpart cmdline
	device driverdisk eula fcoe firewall firstboot graphical group halt harddrive hmc ignoredisk
	iscsi iscsiname keyboard lang liveimg logging logvol mediacheck module mount network nfs
	ostreecontainer ostreesetup part partition poweroff raid realm reboot repo reqpart rescue rhsm
	rootpw selinux services shutdown skipx snapshot sshkey sshpw syspurpose text timesource
	timezone url user vnc volgroup xconfig zerombr zfcp`)

// checkKickstart checks the structure pykickstart would: known commands with balanced quoting
// outside sections, every %section closed by %end, the commands an unattended install needs,
// and the machine's values where they belong.
func checkKickstart(t *testing.T, out []byte, v Vars) {
	t.Helper()
	section := ""
	commands := map[string][]string{}
	var post strings.Builder
	hooks := map[string]string{} // section → its shell body, for the progress hooks
	for n, line := range strings.Split(string(out), "\n") {
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "%") {
			words := strings.Fields(trim)
			switch {
			case words[0] == "%end":
				if section == "" {
					t.Errorf("line %d: %%end outside a section", n+1)
				}
				section = ""
			case slices.Contains([]string{"%packages", "%pre", "%pre-install", "%post", "%onerror", "%addon", "%anaconda"}, words[0]):
				if section != "" {
					t.Errorf("line %d: %s inside %s (missing %%end)", n+1, words[0], section)
				}
				section = trim
			default:
				t.Errorf("line %d: unknown section %q", n+1, words[0])
			}
			continue
		}
		if section != "" {
			if strings.HasPrefix(section, "%post") && strings.Contains(section, "--nochroot") {
				post.WriteString(line + "\n")
			}
			if !strings.HasPrefix(section, "%packages") {
				hooks[section] += line + "\n"
			}
			continue
		}
		if trim == "" || strings.HasPrefix(trim, "#") {
			continue
		}
		args, err := shellWords(trim)
		if err != nil {
			t.Errorf("line %d: %v: %s", n+1, err, line)
			continue
		}
		if !slices.Contains(kickstartCommands, args[0]) {
			t.Errorf("line %d: unknown kickstart command %q", n+1, args[0])
		}
		commands[args[0]] = append(commands[args[0]], strings.Join(args[1:], "\x00"))
	}
	if section != "" {
		t.Errorf("%s never closed with %%end", section)
	}
	for _, c := range []string{"lang", "keyboard", "timezone", "rootpw", "network", "bootloader", "reboot"} {
		if len(commands[c]) == 0 {
			t.Errorf("no %s command: the installer would stop and ask", c)
		}
	}
	if len(commands["autopart"])+len(commands["part"])+len(commands["partition"]) == 0 {
		t.Error("no partitioning: the installer would stop and ask")
	}
	var keys []string
	for _, a := range commands["sshkey"] {
		f := strings.Split(a, "\x00")
		keys = append(keys, f[len(f)-1])
	}
	if !slices.Equal(keys, v.SSHKeys) {
		t.Errorf("sshkey commands carry %q, want %q", keys, v.SSHKeys)
	}
	if len(commands["network"]) == 0 || !strings.Contains(commands["network"][0], "--hostname="+v.Hostname) {
		t.Errorf("network does not set the hostname: %q", commands["network"])
	}
	if !strings.Contains(post.String(), v.DoneCommand) {
		t.Errorf("no %%post --nochroot calls the done URL (before the reboot)")
	}
	// The progress hooks: a section each, valid shell, reporting to the machine's URL.
	for section, phase := range map[string]string{"%pre": "phase=started", "%post --nochroot": "phase=post-install", "%onerror": "status=failed"} {
		body := hooks[section]
		if !strings.Contains(body, v.ProgressURL+"?") || !strings.Contains(body, phase) {
			t.Errorf("%s does not report %s to %s: %q", section, phase, v.ProgressURL, body)
		}
		checkShell(t, section, body)
	}
}

// checkShell fails when script is not valid POSIX shell (sh -n parses without running).
func checkShell(t *testing.T, what, script string) {
	t.Helper()
	if b, err := exec.Command("sh", "-n", "-c", script).CombinedOutput(); err != nil {
		t.Errorf("%s is not valid shell: %v %s\n%s", what, err, b, script)
	}
}

// shellWords splits a line the way kickstart's shlex does: blanks separate, single quotes are
// literal, double quotes allow backslash escapes.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, inWord := rune(0), false
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case in == '\'':
			if r == '\'' {
				in = 0
			} else {
				cur.WriteRune(r)
			}
		case in == '"':
			if r == '\\' && i+1 < len(rs) {
				i++
				cur.WriteRune(rs[i])
			} else if r == '"' {
				in = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			in, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if in != 0 {
		return nil, fmt.Errorf("unclosed %c quote", in)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// debconfTypes are the question types debconf-set-selections accepts.
var debconfTypes = []string{"string", "boolean", "select", "multiselect", "password", "note", "text", "title", "error", "seen"}

// checkPreseed checks every line is a debconf selection "owner question type value" (what
// debconf-set-selections reads; the real one checks the file too when installed), that the
// installer gets no question it would stop at, and the machine's values.
func checkPreseed(t *testing.T, out []byte, v Vars) {
	t.Helper()
	answers := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n, pending := 0, ""
	for sc.Scan() {
		n++
		line := pending + sc.Text()
		if strings.HasSuffix(line, "\\") {
			pending = strings.TrimSuffix(line, "\\")
			continue
		}
		pending = ""
		trim := strings.TrimSpace(line)
		if trim == "" || strings.HasPrefix(trim, "#") {
			continue
		}
		f := strings.SplitN(trim, " ", 4)
		if len(f) < 3 || !strings.Contains(f[1], "/") || !slices.Contains(debconfTypes, f[2]) {
			t.Errorf("line %d is not \"owner question type value\": %s", n, line)
			continue
		}
		value := ""
		if len(f) == 4 {
			value = f[3]
		}
		if f[2] == "boolean" && value != "true" && value != "false" {
			t.Errorf("line %d: boolean %q", n, value)
		}
		answers[f[1]] = value
	}
	for q, want := range map[string]string{
		"netcfg/get_hostname":               v.Hostname,
		"mirror/http/hostname":              v.Vars["mirror_host"],
		"passwd/root-password-crypted":      v.Vars["root_password_hash"],
		"time/zone":                         v.Vars["timezone"],
		"partman/confirm_nooverwrite":       "true",
		"partman-auto/method":               "lvm",
		"grub-installer/bootdev":            "default",
		"finish-install/reboot_in_progress": "",
	} {
		if got, ok := answers[q]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", q, got, ok, want)
		}
	}
	late := answers["preseed/late_command"]
	for q, want := range map[string]string{"preseed/early_command": v.ProgressCommand("started"),
		"partman/early_command": v.ProgressCommand("partitioning")} {
		if answers[q] != want {
			t.Errorf("%s = %q, want the progress hook %q", q, answers[q], want)
		}
		checkShell(t, q, answers[q])
	}
	if !strings.HasPrefix(late, v.ProgressCommand("late")+";") {
		t.Errorf("late_command does not report the late phase first: %q", late)
	}
	if !strings.HasSuffix(late, v.DoneCommand) {
		t.Errorf("late_command does not end by calling the done URL: %q", late)
	}
	// The late command is shell: run it through sh -n, and check each key arrives intact by
	// letting sh expand the quoting of the echo lines.
	script := strings.ReplaceAll(strings.TrimPrefix(late, v.ProgressCommand("late")+"; "), "/target/", t.TempDir()+"/")
	if b, err := exec.Command("sh", "-n", "-c", script).CombinedOutput(); err != nil {
		t.Errorf("late_command is not valid shell: %v %s", err, b)
	}
	keyLines := strings.TrimSuffix(strings.SplitN(script, "chmod", 2)[0], " ")
	dir := strings.SplitN(strings.TrimPrefix(keyLines, "mkdir -p "), ";", 2)[0]
	if b, err := exec.Command("sh", "-c", keyLines).CombinedOutput(); err != nil {
		t.Errorf("writing the keys: %v %s", err, b)
	} else if got, _ := os.ReadFile(filepath.Join(dir, "authorized_keys")); string(got) != strings.Join(v.SSHKeys, "\n")+"\n" {
		t.Errorf("authorized_keys written by late_command:\n%s\nwant the keys verbatim", got)
	}
	if dcs, err := exec.LookPath("debconf-set-selections"); err == nil {
		f := filepath.Join(t.TempDir(), "preseed.cfg")
		os.WriteFile(f, out, 0o644)
		if b, err := exec.Command(dcs, "--checkonly", f).CombinedOutput(); err != nil || len(b) > 0 {
			t.Errorf("debconf-set-selections --checkonly: %v %s", err, b)
		}
	}
}

// checkAutoinstall parses the user-data as YAML and checks what subiquity requires and reads.
func checkAutoinstall(t *testing.T, out []byte, v Vars) {
	t.Helper()
	if !bytes.HasPrefix(out, []byte("#cloud-config\n")) {
		t.Errorf("user-data must start with #cloud-config (cloud-init ignores it otherwise)")
	}
	var doc struct {
		Autoinstall struct {
			Version  int `yaml:"version"`
			Identity struct {
				Hostname, Username, Password string
			} `yaml:"identity"`
			SSH struct {
				InstallServer bool     `yaml:"install-server"`
				Keys          []string `yaml:"authorized-keys"`
			} `yaml:"ssh"`
			Timezone      string   `yaml:"timezone"`
			LateCommands  []string `yaml:"late-commands"`
			EarlyCommands []string `yaml:"early-commands"`
			ErrorCommands []string `yaml:"error-commands"`
			Reporting     map[string]struct {
				Type, Endpoint, Level string
			} `yaml:"reporting"`
			Shutdown string `yaml:"shutdown"`
		} `yaml:"autoinstall"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	dec.KnownFields(false)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("not YAML: %v", err)
	}
	a := doc.Autoinstall
	if a.Version != 1 {
		t.Errorf("autoinstall version %d, want 1", a.Version)
	}
	if a.Identity.Hostname != v.Hostname || a.Identity.Password != v.Vars["password_hash"] || a.Identity.Username == "" {
		t.Errorf("identity %+v", a.Identity)
	}
	if !a.SSH.InstallServer || !slices.Equal(a.SSH.Keys, v.SSHKeys) {
		t.Errorf("ssh %+v, want keys %q", a.SSH, v.SSHKeys)
	}
	if a.Timezone != v.Vars["timezone"] {
		t.Errorf("timezone %q", a.Timezone)
	}
	if !slices.Contains(a.LateCommands, v.DoneCommand) {
		t.Errorf("late-commands %q do not call the done URL", a.LateCommands)
	}
	if a.Shutdown != "reboot" {
		t.Errorf("shutdown %q", a.Shutdown)
	}
	// Progress: subiquity's webhook reporter posts to the machine's URL, the console output
	// stays, and early- and error-commands report start and failure.
	if r := a.Reporting["fleetboot"]; r.Type != "webhook" || r.Endpoint != v.ProgressURL || r.Level != "INFO" {
		t.Errorf("reporting %+v: want a webhook to %s", a.Reporting, v.ProgressURL)
	}
	if a.Reporting["builtin"].Type != "print" {
		t.Errorf("reporting %+v drops the console output (builtin: print)", a.Reporting)
	}
	if len(a.EarlyCommands) != 1 || a.EarlyCommands[0] != v.ProgressCommand("started") {
		t.Errorf("early-commands %q", a.EarlyCommands)
	}
	if len(a.ErrorCommands) != 1 || !strings.Contains(a.ErrorCommands[0], "status=failed") {
		t.Errorf("error-commands %q", a.ErrorCommands)
	}
	for _, c := range append(a.EarlyCommands, a.ErrorCommands...) {
		checkShell(t, "autoinstall command", c)
	}
	// No keys renders an empty list, not a null or a parse error.
	v.SSHKeys = nil
	tmpl, _ := Parse(KindAutoinstall, mustRead(t, "ubuntu24.04.user-data"))
	b, err := Render(tmpl, v)
	if err != nil {
		t.Fatal(err)
	}
	doc.Autoinstall.SSH.Keys = []string{"stale"}
	if err := yaml.Unmarshal(b, &doc); err != nil || len(doc.Autoinstall.SSH.Keys) != 0 {
		t.Errorf("without SSH keys: %v, keys %q", err, doc.Autoinstall.SSH.Keys)
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkAutoYaST checks the profile is well-formed XML in AutoYaST's namespace and reads back
// the machine's values (escaped on the way in, unescaped by the parser).
func checkAutoYaST(t *testing.T, out []byte, v Vars) {
	t.Helper()
	if !bytes.HasPrefix(out, []byte("<?xml")) {
		t.Errorf("the XML declaration must come first")
	}
	d := xml.NewDecoder(bytes.NewReader(out))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
	}
	const ns = "http://www.suse.com/1.0/yast2ns"
	var p struct {
		XMLName  xml.Name `xml:"profile"`
		Hostname string   `xml:"networking>dns>hostname"`
		Timezone string   `xml:"timezone>timezone"`
		Users    []struct {
			Username string   `xml:"username"`
			Password string   `xml:"user_password"`
			Keys     []string `xml:"authorized_keys>listentry"`
		} `xml:"users>user"`
		Scripts []struct {
			Chrooted string `xml:"chrooted"`
			Source   string `xml:"source"`
		} `xml:"scripts>chroot-scripts>script"`
		PreScripts []struct {
			Source string `xml:"source"`
		} `xml:"scripts>pre-scripts>script"`
	}
	if err := xml.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	if p.XMLName.Space != ns {
		t.Errorf("root element %v, want profile in %s", p.XMLName, ns)
	}
	if p.Hostname != v.Hostname || p.Timezone != v.Vars["timezone"] {
		t.Errorf("hostname %q timezone %q", p.Hostname, p.Timezone)
	}
	if len(p.Users) != 1 || p.Users[0].Username != "root" || p.Users[0].Password != v.Vars["root_password_hash"] || !slices.Equal(p.Users[0].Keys, v.SSHKeys) {
		t.Errorf("users %+v, want root with keys %q", p.Users, v.SSHKeys)
	}
	if len(p.Scripts) != 1 || p.Scripts[0].Chrooted != "false" || !strings.HasSuffix(strings.TrimSpace(p.Scripts[0].Source), "\n"+v.DoneCommand) {
		t.Errorf("chroot-scripts %+v: want one unchrooted script calling the done URL (before the reboot)", p.Scripts)
	}
	if len(p.PreScripts) != 1 || strings.TrimSpace(p.PreScripts[0].Source) != v.ProgressCommand("started") {
		t.Errorf("pre-scripts %+v: want the progress hook reporting the start", p.PreScripts)
	}
	for _, s := range p.PreScripts {
		checkShell(t, "AutoYaST pre-script", s.Source)
	}
	for _, s := range p.Scripts {
		checkShell(t, "AutoYaST chroot-script", s.Source)
	}
}

// checkAnswer checks a Proxmox answer file: what the installer requires (CheckAnswer), and the
// machine's values decoded back intact — the SSH key with quotes and '<&>' included.
func checkAnswer(t *testing.T, out []byte, v Vars) {
	t.Helper()
	if err := CheckAnswer(out); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Global struct {
			FQDN       string   `toml:"fqdn"`
			Timezone   string   `toml:"timezone"`
			RootHash   string   `toml:"root-password-hashed"`
			RootSSHKey []string `toml:"root-ssh-keys"`
		} `toml:"global"`
		Webhook struct {
			URL string `toml:"url"`
		} `toml:"post-installation-webhook"`
	}
	if err := toml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	g := doc.Global
	if g.FQDN != v.Hostname+".lab.example" || g.Timezone != v.Vars["timezone"] || g.RootHash != v.Vars["root_password_hash"] {
		t.Errorf("global section: %+v", g)
	}
	if !slices.Equal(g.RootSSHKey, v.SSHKeys) {
		t.Errorf("root-ssh-keys = %q, want %q", g.RootSSHKey, v.SSHKeys)
	}
	if doc.Webhook.URL != v.DoneURL {
		t.Errorf("webhook url %q, want the done URL %q", doc.Webhook.URL, v.DoneURL)
	}
}
