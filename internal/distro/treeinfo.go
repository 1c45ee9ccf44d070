package distro

import (
	"strings"
)

// Treeinfo is a parsed .treeinfo (productmd) file of an Anaconda-installable tree (Fedora,
// RHEL and its rebuilds, CentOS Stream): INI sections of key = value pairs. Section and key
// names are lower case.
type Treeinfo map[string]map[string]string

// Get returns a value, "" when absent.
func (t Treeinfo) Get(section, key string) string {
	return t[strings.ToLower(section)][strings.ToLower(key)]
}

// Limits that keep a hostile .treeinfo small in memory.
const (
	maxSections = 256
	maxKeys     = 256
	maxValueLen = 4096
)

// ParseTreeinfo reads an INI-style .treeinfo. Comment lines start with ';' or '#'; keys
// before any section are dropped; later duplicates win. It never fails.
func ParseTreeinfo(data []byte) Treeinfo {
	t := Treeinfo{}
	var sec map[string]string
	configLines(data, 100000, func(line string) {
		if line == "" || line[0] == ';' || line[0] == '#' {
			return
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				sec = nil
				return
			}
			name := strings.ToLower(strings.TrimSpace(line[1:end]))
			if s, ok := t[name]; ok {
				sec = s
			} else if len(t) < maxSections {
				sec = map[string]string{}
				t[name] = sec
			} else {
				sec = nil
			}
			return
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || sec == nil {
			return
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if k == "" || len(k) > maxValueLen {
			return
		}
		if len(v) > maxValueLen {
			v = v[:maxValueLen]
		}
		if _, exists := sec[k]; exists || len(sec) < maxKeys {
			sec[k] = v
		}
	})
	return t
}

// ParseLoaderEntry reads one systemd-boot / Boot Loader Specification entry
// (loader/entries/*.conf): title, linux (or efi), initrd lines in order and options lines
// joined. It never fails; an entry without linux or efi has an empty Kernel.
func ParseLoaderEntry(data []byte) ConfigEntry {
	var e ConfigEntry
	var opts []string
	configLines(data, 10000, func(line string) {
		if line == "" || line[0] == '#' {
			return
		}
		k, v := splitFirst(line)
		switch strings.ToLower(k) {
		case "title":
			e.Label = cleanLabel(v)
		case "linux":
			e.Loader, e.Kernel = "linux", firstWord(v)
		case "efi":
			if e.Kernel == "" {
				e.Loader, e.Kernel = "efi", firstWord(v)
			}
		case "initrd":
			for _, f := range strings.Fields(v) {
				if len(e.Initrds) < maxInitrds {
					e.Initrds = append(e.Initrds, f)
				}
			}
		case "options":
			opts = append(opts, strings.Fields(v)...)
		}
	})
	args, initrds := splitInitrdArgs(opts)
	e.Args = args
	if len(e.Initrds) == 0 {
		e.Initrds = initrds
	}
	return e
}

// diskInfo is what .disk/info (Debian and Ubuntu media) says about the image, e.g.
//
//	Ubuntu-Server 24.04.1 LTS "Noble Numbat" - Release amd64 (20240827)
//	Debian GNU/Linux 12.7.0 "Bookworm" - Official amd64 NETINST with firmware 20240831-10:38
type diskInfo struct {
	raw     string
	name    string // "Ubuntu-Server", "Debian GNU/Linux"
	version string // "24.04.1", "12.7.0"
	arch    string // normalised: x86_64, arm64 …
}

// parseDiskInfo reads the first line of .disk/info. The name is everything before the first
// word that starts with a digit; the version is that word; the architecture is the first
// Debian architecture name among the words.
func parseDiskInfo(data []byte) diskInfo {
	line, _, _ := strings.Cut(string(data), "\n")
	line = cleanLabel(strings.TrimRight(line, "\x00"))
	d := diskInfo{raw: line}
	words := strings.Fields(line)
	for i, w := range words {
		if w[0] >= '0' && w[0] <= '9' {
			d.name = strings.Join(words[:i], " ")
			d.version = strings.TrimRight(w, ",")
			break
		}
	}
	if d.name == "" {
		d.name = line
	}
	for _, w := range words {
		if a := debianArch(w); a != "" {
			d.arch = a
			break
		}
	}
	return d
}

// debianArch maps a Debian architecture name to iPXE's ${buildarch} spelling, "" if w is
// none.
func debianArch(w string) string {
	switch strings.ToLower(w) {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "arm64"
	case "i386":
		return "i386"
	case "armhf":
		return "arm32"
	case "ppc64el", "s390x", "riscv64", "loong64":
		return strings.ToLower(w)
	}
	return ""
}

// normArch maps the architecture names distributions use (.treeinfo, directory names) to
// iPXE's ${buildarch} spelling, which is what machines report when they ask for a script.
func normArch(a string) string {
	switch l := strings.ToLower(strings.TrimSpace(a)); l {
	case "x86_64", "amd64", "x64", "x86-64":
		return "x86_64"
	case "aarch64", "arm64", "aa64":
		return "arm64"
	case "i386", "i486", "i586", "i686", "x86", "ia32":
		return "i386"
	case "":
		return ""
	default:
		return l
	}
}
