package distro

import (
	"strings"
)

// ConfigEntry is one boot entry found in a boot loader configuration on the ISO (GRUB
// menuentry, isolinux/syslinux LABEL, systemd-boot loader entry). Paths are as written in the
// file until Detect resolves them against the ISO; Detect keeps only entries whose kernel
// exists.
type ConfigEntry struct {
	// Source is the configuration file the entry came from, e.g. "/boot/grub/grub.cfg".
	Source string `json:"source"`
	// Label is the menu title; nested menus are joined with " > ".
	Label string `json:"label"`
	// Loader is the command that loads the kernel: linux, linuxefi, linux16, kernel, efi …
	Loader  string   `json:"loader"`
	Kernel  string   `json:"kernel"`
	Initrds []string `json:"initrds,omitempty"`
	// Args is the kernel command line the entry passes, initrd= arguments removed.
	Args string `json:"args,omitempty"`
}

// GrubConfig is what ParseGrubCfg found in a grub.cfg.
type GrubConfig struct {
	Entries []ConfigEntry
	// Includes are files the config reads with `source` or `configfile`, as written.
	Includes []string
}

// Limits for the config parsers: configs of real ISOs are a few KiB with tens of entries.
const (
	maxEntries    = 256
	maxNesting    = 32
	maxWordLen    = 8192
	maxArgsLen    = 8192
	maxIncludes   = 32
	maxInitrds    = 16
	maxLabelRunes = 256
)

// grubToken is a word or a separator of GRUB's shell-like script syntax.
type grubToken struct {
	kind byte // 'w' word, '\n' end of command, '{', '}'
	word string
}

// lexGrub splits a grub.cfg into words and separators. It follows GRUB's quoting closely
// enough for menu entries: '…' is literal, "…" and bare words take backslash escapes (so
// `ds=nocloud\;s=…` yields a ';' inside the word, as GRUB passes it to the kernel), a word
// starting with # starts a comment, ${…} stays inside its word, ';' and newline end a
// command, and { } are separators.
func lexGrub(data []byte) []grubToken {
	var toks []grubToken
	var w strings.Builder
	inWord := false
	emit := func() {
		if inWord {
			toks = append(toks, grubToken{kind: 'w', word: w.String()})
			w.Reset()
			inWord = false
		}
	}
	add := func(c byte) {
		if w.Len() < maxWordLen {
			w.WriteByte(c)
		}
		inWord = true
	}
	s := data
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			inWord = true
			for i++; i < len(s) && s[i] != '\''; i++ {
				add(s[i])
			}
		case c == '"':
			inWord = true
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					switch s[i+1] {
					case '"', '\\', '$':
						i++
					case '\n':
						i++
						continue
					}
				}
				add(s[i])
			}
		case c == '\\':
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					add(s[i])
				}
			}
		case c == '$' && i+1 < len(s) && s[i+1] == '{':
			for ; i < len(s) && s[i] != '}'; i++ {
				add(s[i])
			}
			if i < len(s) {
				add('}')
			}
		case c == '#' && !inWord:
			for i < len(s) && s[i] != '\n' {
				i++
			}
			i-- // let the newline end the command
		case c == '\n' || c == ';' || c == '\r':
			emit()
			if c != '\r' {
				toks = append(toks, grubToken{kind: '\n'})
			}
		case c == '{' || c == '}':
			emit()
			toks = append(toks, grubToken{kind: c})
		case c == ' ' || c == '\t' || c == '\v' || c == '\f':
			emit()
		default:
			add(c)
		}
	}
	emit()
	return toks
}

// ParseGrubCfg finds the menu entries of a GRUB configuration: each menuentry's title, its
// linux/linuxefi/linux16 line (kernel and arguments) and its initrd/initrdefi/initrd16 lines,
// with submenu titles prefixed. Variables set with `set name=value` outside any entry are
// substituted in kernel and initrd paths; conditions are not evaluated, so entries under
// `if` branches for both BIOS and UEFI all appear. It never fails: what it cannot read it
// leaves out.
func ParseGrubCfg(data []byte) GrubConfig {
	p := grubParser{toks: lexGrub(data), vars: map[string]string{}}
	p.block(nil, 0, false)
	return p.out
}

type grubParser struct {
	toks []grubToken
	pos  int
	vars map[string]string
	out  GrubConfig
}

// block parses commands until the matching '}' (or the end). labels is the submenu path;
// entry, when non-nil, is the menu entry whose body this is.
func (p *grubParser) block(labels []string, depth int, inEntry bool) *grubBody {
	body := &grubBody{}
	var cmd []string
	flush := func() {
		if len(cmd) > 0 {
			p.command(cmd, body, inEntry)
			cmd = nil
		}
	}
	for p.pos < len(p.toks) {
		t := p.toks[p.pos]
		p.pos++
		switch t.kind {
		case 'w':
			if len(cmd) < 1024 {
				cmd = append(cmd, t.word)
			}
		case '\n':
			flush()
		case '{':
			head := cmd
			cmd = nil
			if depth >= maxNesting {
				p.skipBlock()
				continue
			}
			// `then menuentry … {` on one line: the keyword need not be the first word.
			for i, w := range head {
				if w == "menuentry" || w == "submenu" {
					head = head[i:]
					break
				}
			}
			if len(head) > 0 && (head[0] == "menuentry" || head[0] == "submenu") {
				title := grubTitle(head[1:])
				path := append(append([]string(nil), labels...), title)
				if head[0] == "submenu" {
					p.block(path, depth+1, false)
					continue
				}
				b := p.block(path, depth+1, true)
				p.addEntry(path, b)
				continue
			}
			// function bodies and bare blocks: look inside for menu entries, but a
			// kernel line there belongs to no entry.
			inner := p.block(labels, depth+1, inEntry)
			if inEntry {
				body.merge(inner)
			}
		case '}':
			flush()
			return body
		}
	}
	flush()
	return body
}

// skipBlock skips to the '}' that closes the block just opened, counting nested braces.
func (p *grubParser) skipBlock() {
	depth := 1
	for p.pos < len(p.toks) && depth > 0 {
		switch p.toks[p.pos].kind {
		case '{':
			depth++
		case '}':
			depth--
		}
		p.pos++
	}
}

type grubBody struct {
	loader  string
	kernel  string
	args    []string
	initrds []string
}

func (b *grubBody) merge(o *grubBody) {
	if b.kernel == "" && o.kernel != "" {
		b.loader, b.kernel, b.args = o.loader, o.kernel, o.args
	}
	if len(b.initrds) == 0 {
		b.initrds = o.initrds
	}
}

func (p *grubParser) command(cmd []string, body *grubBody, inEntry bool) {
	switch name := cmd[0]; name {
	case "set":
		if !inEntry && len(cmd) >= 2 {
			if k, v, ok := strings.Cut(cmd[1], "="); ok && k != "" && len(p.vars) < 256 {
				p.vars[k] = v
			}
		}
	case "source", "configfile":
		if len(cmd) >= 2 && len(p.out.Includes) < maxIncludes {
			p.out.Includes = append(p.out.Includes, p.expand(cmd[1]))
		}
	case "linux", "linuxefi", "linux16", "linux32", "kernel":
		if inEntry && len(cmd) >= 2 && body.kernel == "" {
			body.loader = name
			body.kernel = p.expand(cmd[1])
			body.args = cmd[2:]
		}
	case "initrd", "initrdefi", "initrd16", "initrd32":
		if inEntry {
			for _, f := range cmd[1:] {
				if len(body.initrds) < maxInitrds && !strings.HasPrefix(f, "-") {
					body.initrds = append(body.initrds, p.expand(f))
				}
			}
		}
	case "chainloader":
		// An EFI binary (memtest86+, a UEFI shell …). Recorded as the kernel only when the
		// entry loads nothing else, so iPXE can try it under UEFI.
		if inEntry && len(cmd) >= 2 && body.kernel == "" {
			f := cmd[len(cmd)-1]
			if strings.HasSuffix(strings.ToLower(f), ".efi") {
				body.loader = name
				body.kernel = p.expand(f)
			}
		}
	}
}

func (p *grubParser) addEntry(labels []string, b *grubBody) {
	if b.kernel == "" || len(p.out.Entries) >= maxEntries {
		return
	}
	kernel := stripGrubDevice(b.kernel)
	if kernel == "" {
		return // "linux (hd0)" names a device, not a file
	}
	args, initrds := splitInitrdArgs(b.args)
	if len(b.initrds) > 0 {
		initrds = b.initrds
	}
	p.out.Entries = append(p.out.Entries, ConfigEntry{
		Label:   joinLabels(labels),
		Loader:  b.loader,
		Kernel:  kernel,
		Initrds: stripGrubDevices(initrds),
		Args:    args,
	})
}

// expand substitutes $name and ${name} with values from top-level `set` commands. Unknown
// variables stay as written, so a path that needs them will not resolve on the ISO.
func (p *grubParser) expand(s string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		var name string
		end := i + 1
		if s[end] == '{' {
			close := strings.IndexByte(s[end:], '}')
			if close < 0 {
				b.WriteString(s[i:])
				break
			}
			name = s[end+1 : end+close]
			end += close + 1
		} else {
			for end < len(s) && (isAlnum(s[end]) || s[end] == '_') {
				end++
			}
			name = s[i+1 : end]
		}
		if v, ok := p.vars[name]; ok && name != "" {
			b.WriteString(v)
		} else {
			b.WriteString(s[i:end])
		}
		i = end - 1
	}
	return b.String()
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// grubTitle is the first non-option word after menuentry/submenu.
func grubTitle(words []string) string {
	for i := 0; i < len(words); i++ {
		w := words[i]
		if strings.HasPrefix(w, "--") {
			// Options that take a value as the next word.
			switch w {
			case "--class", "--users", "--hotkey", "--id", "--source":
				i++
			}
			continue
		}
		return w
	}
	return ""
}

// stripGrubDevice turns "(loop)/casper/vmlinuz" or "($root)/x" into "/casper/vmlinuz": the
// device is the ISO itself for every config Detect reads.
func stripGrubDevice(p string) string {
	if strings.HasPrefix(p, "(") {
		if i := strings.IndexByte(p, ')'); i > 0 {
			p = p[i+1:]
		}
	}
	return p
}

func stripGrubDevices(ps []string) []string {
	var out []string
	for _, p := range ps {
		if p = stripGrubDevice(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// splitInitrdArgs removes initrd=… (comma-separated list, syslinux style) and BOOT_IMAGE=…
// from kernel arguments and returns the rest joined by spaces, plus the initrds named.
func splitInitrdArgs(words []string) (string, []string) {
	var args []string
	var initrds []string
	n := 0
	for _, w := range words {
		if v, ok := strings.CutPrefix(w, "initrd="); ok {
			for _, f := range strings.Split(v, ",") {
				if f != "" && len(initrds) < maxInitrds {
					initrds = append(initrds, f)
				}
			}
			continue
		}
		if strings.HasPrefix(w, "BOOT_IMAGE=") || w == "" {
			continue
		}
		if n+len(w)+1 > maxArgsLen {
			break
		}
		n += len(w) + 1
		args = append(args, w)
	}
	return strings.Join(args, " "), initrds
}

func joinLabels(labels []string) string {
	var parts []string
	for _, l := range labels {
		if l = cleanLabel(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " > ")
}

// cleanLabel makes a menu title printable and short: syslinux hotkey markers (^) and control
// characters go, runs of spaces shrink to one.
func cleanLabel(s string) string {
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		if n >= maxLabelRunes {
			break
		}
		switch {
		case r == '^':
			continue
		case r < 0x20 || r == 0x7f || r == 0xfffd:
			r = ' '
		}
		if r == ' ' {
			if space || b.Len() == 0 {
				continue
			}
			space = true
		} else {
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}
