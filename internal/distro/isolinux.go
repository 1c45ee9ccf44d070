package distro

import (
	"bufio"
	"bytes"
	"strings"
)

// SyslinuxConfig is what ParseIsolinuxCfg found in an isolinux.cfg / syslinux.cfg (or a file
// they include).
type SyslinuxConfig struct {
	Entries []ConfigEntry
	// Includes are files named by INCLUDE or CONFIG, as written.
	Includes []string
}

// ParseIsolinuxCfg finds the LABEL entries of a syslinux-family configuration (isolinux,
// syslinux, pxelinux): KERNEL or LINUX, INITRD and APPEND, initrd= inside APPEND, MENU LABEL
// titles and MENU BEGIN submenus. A global APPEND applies to labels without their own, as in
// syslinux. Labels that load COM32 modules (.c32), boot the local disk or chain other loaders
// are left out: iPXE cannot run them. Paths stay as written; syslinux resolves relative ones
// against the config file's directory, which Detect does. It never fails.
func ParseIsolinuxCfg(data []byte) SyslinuxConfig {
	var out SyslinuxConfig
	var cur *sysEntry
	var globalAppend string
	var menus []string
	var entries []*sysEntry
	inText := false

	configLines(data, 100000, func(line string) {
		if inText {
			if strings.EqualFold(firstWord(line), "endtext") {
				inText = false
			}
			return
		}
		if line == "" || line[0] == '#' {
			return
		}
		kw, rest := splitKeyword(line)
		switch kw {
		case "label":
			if len(entries) >= maxEntries {
				cur = nil
				return
			}
			cur = &sysEntry{name: rest, menus: append([]string(nil), menus...)}
			entries = append(entries, cur)
		case "menu":
			sub, arg := splitKeyword(rest)
			switch sub {
			case "label":
				if cur != nil {
					cur.label = arg
				} else if len(menus) > 0 {
					menus[len(menus)-1] = arg // the title of the submenu just begun
				}
			case "begin":
				if len(menus) < maxNesting {
					menus = append(menus, arg)
				}
				cur = nil
			case "end":
				if len(menus) > 0 {
					menus = menus[:len(menus)-1]
				}
				cur = nil
			}
		case "text":
			inText = true
		case "kernel", "linux":
			if cur != nil {
				// "KERNEL vmlinuz quiet" is accepted by syslinux as a kernel with arguments.
				cur.loader = kw
				cur.kernel, cur.kernelArgs = splitFirst(rest)
			}
		case "com32", "localboot", "pxe", "fdimage", "comboot", "bss", "boot", "config":
			if kw == "config" {
				if f := firstWord(rest); f != "" && len(out.Includes) < maxIncludes {
					out.Includes = append(out.Includes, f)
				}
				return
			}
			if cur != nil {
				cur.skip = true
			}
		case "append":
			if cur != nil {
				cur.append = rest
				cur.hasAppend = true
			} else {
				globalAppend = rest
			}
		case "initrd":
			if cur != nil {
				for _, f := range strings.Split(firstWord(rest), ",") {
					if f != "" && len(cur.initrds) < maxInitrds {
						cur.initrds = append(cur.initrds, f)
					}
				}
			}
		case "include":
			if f := firstWord(rest); f != "" && len(out.Includes) < maxIncludes {
				out.Includes = append(out.Includes, f)
			}
		}
	})

	for _, e := range entries {
		kernel := stripSyslinuxPrefix(e.kernel)
		if e.skip || kernel == "" || isModule(kernel) {
			continue
		}
		appendLine := e.append
		if !e.hasAppend {
			appendLine = globalAppend
		}
		words := strings.Fields(strings.TrimSpace(e.kernelArgs + " " + appendLine))
		args, initrds := splitInitrdArgs(words)
		all := append(append([]string(nil), e.initrds...), initrds...)
		label := e.label
		if label == "" {
			label = e.name
		}
		out.Entries = append(out.Entries, ConfigEntry{
			Label:   joinLabels(append(e.menus, label)),
			Loader:  e.loader,
			Kernel:  kernel,
			Initrds: stripSyslinuxPrefixes(all),
			Args:    args,
		})
	}
	return out
}

type sysEntry struct {
	name, label string
	menus       []string
	loader      string
	kernel      string
	kernelArgs  string
	append      string
	hasAppend   bool
	initrds     []string
	skip        bool
}

// splitKeyword returns the lower-cased first word of line and the rest, trimmed.
func splitKeyword(line string) (string, string) {
	line = strings.TrimSpace(line)
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return strings.ToLower(line), ""
	}
	return strings.ToLower(line[:i]), strings.TrimSpace(line[i+1:])
}

func firstWord(s string) string {
	f, _ := splitFirst(s)
	return f
}

func splitFirst(s string) (string, string) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i+1:])
}

// isModule reports kernels iPXE cannot boot as Linux: syslinux COM32 modules, PXE loaders
// and boot sectors.
func isModule(k string) bool {
	l := strings.ToLower(k)
	for _, ext := range []string{".c32", ".0", ".com", ".cbt", ".bss", ".bs"} {
		if strings.HasSuffix(l, ext) {
			return true
		}
	}
	return false
}

// stripSyslinuxPrefix drops PXELINUX's "::" (root of the boot server) from a path.
func stripSyslinuxPrefix(p string) string {
	return strings.TrimPrefix(p, "::")
}

func stripSyslinuxPrefixes(ps []string) []string {
	var out []string
	for _, p := range ps {
		out = append(out, stripSyslinuxPrefix(p))
	}
	return out
}

// configLines calls fn with each line of a boot config, trimmed, for at most maxLines lines;
// overlong lines are cut (scanLinesAnyLength), so hostile input costs bounded work.
func configLines(data []byte, maxLines int, fn func(line string)) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxWordLen*2)
	sc.Split(scanLinesAnyLength)
	for n := 0; n < maxLines && sc.Scan(); n++ {
		fn(strings.TrimSpace(sc.Text()))
	}
}

// scanLinesAnyLength is bufio.ScanLines that cuts overlong lines instead of failing, so one
// hostile line does not end the parse.
func scanLinesAnyLength(data []byte, atEOF bool) (int, []byte, error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if len(data) >= maxWordLen {
		return len(data), data[:maxWordLen], nil
	}
	if atEOF {
		return len(data), data, nil
	}
	return 0, nil, nil
}
