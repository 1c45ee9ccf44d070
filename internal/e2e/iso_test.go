package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// familyISO is an ISO in one distribution's real layout whose kernel and initrd are the test
// payload under the family's file names, and the profile that installs it.
type familyISO struct {
	name   string // ISO name on upload and profile name
	family string // what fleetboot's detection must say
	// files are the ISO's small files (signatures, repositories, live images); the kernel and
	// initrd go to kernelPath and initrdPath.
	files      map[string]string
	kernelPath string
	initrdPath string
	volid      string
	// kind and template are the profile's unattended template.
	kind     string
	template string
	// rawArg, for kind raw, is the kernel argument the profile's extra_args set to the
	// unattended URL ({{.UnattendedURL}}): the recipe places none for raw templates.
	rawArg string
	// unattendedFile is the file below /unattended/<mac>/ the recipe must point at ("" for
	// the NoCloud directory of autoinstall).
	unattendedFile string
	// wantArgs are command-line words (after substituting {iso} with the ISO's URL and {ua}
	// with the machine's unattended base URL) that prove the family was recognised and the
	// unattended file wired in, hard-coded from each installer's documentation.
	wantArgs []string
	// fetches maps what the payload downloads (see installerInit) to the ISO file whose size
	// it must get; "" stands for the whole image.
	fetches map[string]string
	// extraArgs are more kernel arguments for the profile (the payload's own switches, e.g.
	// fbdisk=).
	extraArgs string
}

// blob is a deterministic file body of n bytes; distinct n per file makes a wrong file show up
// as a wrong size in the payload's fetch report.
func blob(seed byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return string(b)
}

// doneLine is how each template hands the installer the done callback: the command fleetboot
// renders, run at the end of the install.
const doneLine = "{{.DoneCommand}}"

// familyISOs are the distributions the ISO scenarios install, each in the layout the
// distribution ships (see internal/distro/layouts_test.go for the real trees).
func familyISOs() []familyISO {
	return []familyISO{
		{
			name: "rocky-9.4-dvd", family: "rocky", volid: "Rocky-9-4-x86_64-dvd",
			files: map[string]string{
				"/.treeinfo": "[general]\narch = x86_64\nfamily = Rocky Linux\nname = Rocky Linux 9.4\nversion = 9.4\n\n" +
					"[images-x86_64]\ninitrd = images/pxeboot/initrd.img\nkernel = images/pxeboot/vmlinuz\n\n" +
					"[release]\nname = Rocky Linux\nshort = Rocky\nversion = 9.4\n\n[stage2]\nmainimage = images/install.img\n\n" +
					"[variant-BaseOS]\nid = BaseOS\nname = BaseOS\npackages = BaseOS/Packages\nrepository = BaseOS\n",
				"/images/install.img":            blob(1, 20000),
				"/BaseOS/repodata/repomd.xml":    "<?xml version=\"1.0\"?>\n<repomd/>\n",
				"/AppStream/repodata/repomd.xml": "<?xml version=\"1.0\"?>\n<repomd/>\n",
			},
			kernelPath: "/images/pxeboot/vmlinuz", initrdPath: "/images/pxeboot/initrd.img",
			kind:           "kickstart",
			template:       "# fleetboot e2e kickstart for {{.Hostname}} ({{.MAC}})\ntext\nreboot\n%post\n" + doneLine + "\n%end\n",
			unattendedFile: "ks.cfg",
			wantArgs:       []string{"inst.repo={iso}/files/", "inst.ks={ua}/ks.cfg"},
			fetches:        map[string]string{"treeinfo": "/.treeinfo"},
		},
		{
			name: "ubuntu-24.04.2-live-server", family: "ubuntu", volid: "Ubuntu-Server 24.04.2 LTS amd64",
			files: map[string]string{
				"/.disk/info":                    `Ubuntu-Server 24.04.2 LTS "Noble Numbat" - Release amd64 (20250215)`,
				"/casper/install-sources.yaml":   "- default: true\n  id: ubuntu-server\n",
				"/casper/ubuntu-server.squashfs": blob(2, 30000),
				"/boot/grub/grub.cfg": "menuentry \"Try or Install Ubuntu Server\" {\n\tset gfxpayload=keep\n" +
					"\tlinux\t/casper/vmlinuz iso-scan/filename=/ubuntu.iso --- fleetboot.isoonly=ubuntu-grub\n\tinitrd\t/casper/initrd\n}\n",
			},
			kernelPath: "/casper/vmlinuz", initrdPath: "/casper/initrd",
			kind:     "autoinstall",
			template: "#cloud-config\n# fleetboot e2e autoinstall for {{.Hostname}}\nautoinstall:\n  version: 1\n  late-commands:\n    - " + doneLine + "\n",
			wantArgs: []string{"url={iso}/image.iso", "autoinstall", "ds=nocloud-net;s={ua}/", "cloud-config-url=/dev/null",
				"fleetboot.isoonly=ubuntu-grub"}, // only in the ISO's grub.cfg
			fetches: map[string]string{"iso": ""},
		},
		{
			name: "archlinux-2024.09.01", family: "arch", volid: "ARCH_202409",
			files: map[string]string{
				"/arch/version":                "2024.09.01\n",
				"/arch/x86_64/airootfs.sfs":    blob(3, 40000),
				"/arch/x86_64/airootfs.sha512": "0123  airootfs.sfs\n",
				"/arch/pkglist.x86_64.txt":     "base 3-2\n",
				"/loader/loader.conf":          "timeout 15\ndefault 01-archiso-x86_64-linux.conf\n",
			},
			kernelPath: "/arch/boot/x86_64/vmlinuz-linux", initrdPath: "/arch/boot/x86_64/initramfs-linux.img",
			kind: "raw", rawArg: "script",
			template: "#!/bin/sh\n# fleetboot e2e archiso script for {{.Hostname}}\n" + doneLine + "\n",
			wantArgs: []string{"archisobasedir=arch", "archiso_http_srv={iso}/files/", "script={ua}/file"},
			fetches:  map[string]string{"airootfs": "/arch/x86_64/airootfs.sfs"},
		},
		{
			name: "alpine-standard-3.20.3", family: "alpine", volid: "alpine-std 3.20.3 x86_64",
			files: map[string]string{
				"/.alpine-release":                       "alpine-standard-3.20.3 240906\n",
				"/apks/.boot_repository":                 "",
				"/apks/x86_64/APKINDEX.tar.gz":           blob(4, 5000),
				"/apks/x86_64/alpine-base-3.20.3-r0.apk": blob(5, 2000),
				"/boot/modloop-lts":                      blob(6, 50000),
				"/boot/config-lts":                       "CONFIG_X86_64=y\n",
			},
			kernelPath: "/boot/vmlinuz-lts", initrdPath: "/boot/initramfs-lts",
			kind: "raw", rawArg: "apkovl",
			template: "# fleetboot e2e apkovl stand-in for {{.Hostname}}\n" + doneLine + "\n",
			wantArgs: []string{"alpine_repo={iso}/files/apks", "modloop={iso}/files/boot/modloop-lts", "apkovl={ua}/file"},
			fetches:  map[string]string{"modloop": "/boot/modloop-lts", "apkindex": "/apks/x86_64/APKINDEX.tar.gz"},
		},
		{
			name: "debian-12-mini", family: "debian", volid: "ISOIMAGE",
			files: map[string]string{
				"/isolinux.cfg": "path \ninclude menu.cfg\ndefault vesamenu.c32\nprompt 0\ntimeout 0\n",
				"/menu.cfg":     "menu hshift 4\nmenu width 70\nmenu title Debian GNU/Linux installer menu (BIOS mode)\ninclude txt.cfg\n",
				"/txt.cfg":      "default install\nlabel install\n\tmenu label ^Install\n\tmenu default\n\tkernel linux\n\tappend vga=788 initrd=initrd.gz fleetboot.isoonly=debian-txt --- quiet\n",
			},
			kernelPath: "/linux", initrdPath: "/initrd.gz",
			kind: "preseed",
			template: "#_preseed_V1\n# fleetboot e2e preseed for {{.Hostname}}\nd-i debian-installer/locale string en_US\n" +
				"d-i preseed/late_command string " + doneLine + "\n",
			unattendedFile: "preseed.cfg",
			wantArgs: []string{"auto=true", "priority=critical", "url={ua}/preseed.cfg",
				"fleetboot.isoonly=debian-txt", "quiet"}, // only in the ISO's txt.cfg
		},
	}
}

// buildFamilyISO writes f's tree with the payload kernel and initrd into a staging directory
// and makes an ISO of it with xorriso (Rock Ridge, as distributions do), returning its path.
func buildFamilyISO(dir string, f familyISO, kernel, initrd []byte) (string, error) {
	tree := filepath.Join(dir, f.name+".tree")
	if err := os.RemoveAll(tree); err != nil {
		return "", err
	}
	files := map[string][]byte{f.kernelPath: kernel, f.initrdPath: initrd}
	for p, body := range f.files {
		files[p] = []byte(body)
	}
	for p, body := range files {
		dst := filepath.Join(tree, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(dst, body, 0o644); err != nil {
			return "", err
		}
	}
	iso := filepath.Join(dir, f.name+".iso")
	cmd := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", f.volid, "-o", iso, tree)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("xorriso for %s: %w\n%s", f.name, err, out)
	}
	return iso, os.RemoveAll(tree)
}

// apiClient talks to fleetboot's API from inside the test LAN with the server's token.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// do sends a request; a JSON body is encoded from in unless in is an io.Reader (sent raw), and
// a 2xx answer is decoded into out when out is not nil.
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ctype := ""
	switch v := in.(type) {
	case nil:
	case io.Reader:
		body, ctype = v, "application/octet-stream"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if f, ok := in.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			req.ContentLength = st.Size()
		}
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w: %s", method, path, err, data)
		}
	}
	return nil
}

// isoInfo is the part of an ISO's API view the scenarios read.
type isoInfo struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	URL      string `json:"url"`
	Detected struct {
		Family  string `json:"family"`
		Arch    string `json:"arch"`
		Variant string `json:"variant"`
		Version string `json:"version"`
		Recipes []struct {
			ID       string                  `json:"id"`
			Label    string                  `json:"label"`
			Kernel   string                  `json:"kernel"`
			Initrds  []struct{ Path string } `json:"initrds"`
			Cmdline  string                  `json:"cmdline"`
			Firmware string                  `json:"firmware"`
			Arch     string                  `json:"arch"`
		} `json:"recipes"`
		RecipeError string `json:"recipe_error"`
	} `json:"detected"`
}

// machineInfo is a machine as the API shows it.
type machineInfo struct {
	MAC      string `json:"mac"`
	Profile  string `json:"profile"`
	State    string `json:"state"`
	IP       string `json:"ip"`
	Arch     string `json:"arch"`
	Platform string `json:"platform"`
	// Hardware is what iPXE reported (SMBIOS, NIC).
	Hardware map[string]string `json:"hardware"`
}

// eventInfo is one entry of a machine's timeline.
type eventInfo struct {
	MAC    string    `json:"mac"`
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
	// Site is the --site of the instance that wrote the event (several instances on one
	// PostgreSQL); empty without one.
	Site string `json:"site"`
}

// uploadISO PUTs the image at p as name and returns fleetboot's view of it.
func (c *apiClient) uploadISO(ctx context.Context, name, p string) (*isoInfo, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var iso isoInfo
	if err := c.do(ctx, http.MethodPut, "/api/v1/isos/"+name, f, &iso); err != nil {
		return nil, err
	}
	return &iso, nil
}

// stateTrail extracts the state changes ("a → b") of a timeline, in order.
func stateTrail(events []eventInfo) []string {
	var out []string
	for _, e := range events {
		if e.Kind != "state" {
			continue
		}
		change, _, _ := strings.Cut(e.Detail, ":")
		out = append(out, strings.ReplaceAll(strings.TrimSpace(change), " → ", "→"))
	}
	return out
}

// eventKinds lists the distinct kinds of a timeline, sorted, for failure messages.
func eventKinds(events []eventInfo) string {
	seen := map[string]bool{}
	for _, e := range events {
		seen[e.Kind] = true
	}
	var ks []string
	for k := range seen {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func TestStateTrailReadsStateEventsInOrder(t *testing.T) {
	ev := []eventInfo{
		{Kind: "created", Detail: "added by operator"},
		{Kind: "state", Detail: "discovered → install-pending: set by operator"},
		{Kind: "boot", Detail: "installer x"},
		{Kind: "state", Detail: "install-pending → installing: installer p handed out"},
		{Kind: "state", Detail: "installing → installed: installer reported done from 10.77.0.100"},
	}
	got := strings.Join(stateTrail(ev), " ")
	if want := "discovered→install-pending install-pending→installing installing→installed"; got != want {
		t.Errorf("stateTrail = %q, want %q", got, want)
	}
	if got := eventKinds(ev); got != "boot,created,state" {
		t.Errorf("eventKinds = %q", got)
	}
}

// TestFamilyISOsAreDistinctAndComplete guards the fixture table: every family has kernel and
// initrd paths, a template kind the API knows, and expectations to check.
func TestFamilyISOsAreDistinctAndComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range familyISOs() {
		if seen[f.name] || seen[f.family] {
			t.Errorf("%s: duplicate name or family", f.name)
		}
		seen[f.name], seen[f.family] = true, true
		if f.kernelPath == "" || f.initrdPath == "" || len(f.wantArgs) == 0 {
			t.Errorf("%s: kernel, initrd and wanted arguments are required", f.name)
		}
		switch f.kind {
		case "kickstart", "preseed", "autoinstall", "autoyast", "raw":
		default:
			t.Errorf("%s: template kind %q", f.name, f.kind)
		}
		if !strings.Contains(f.template, doneLine) {
			t.Errorf("%s: template does not call the done command", f.name)
		}
	}
}
