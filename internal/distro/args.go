package distro

import (
	"path"
	"strings"
)

// How a recipe builds a command line (Recipe's finish step):
//
//	<ISO args before "---"> <recipe args> [--- <ISO args after "---">] <console> <profile args>
//
// The ISO's own arguments come from the boot entry the recipe boots (the first entry of the
// ISO's grub/isolinux/loader configs with the same kernel): whatever the ISO's author put
// there — console=ttyS0,115200n8 on a remixed serial ISO, inst.ks= on a vendor ISO, Debian's
// "--- quiet" — reaches the kernel. Only arguments that locate the boot medium (it is not
// there over the network), video-mode prompts that hang a headless machine, GRUB variables
// and words iPXE would cut are dropped or rewritten; every decision is recorded in
// Entry.ISOArgs with the reason. The recipe's network arguments replace ISO arguments with the
// same key; the profile's (console and extra args) come last and replace any earlier argument
// with the same key. "---" is debian-installer's and casper's separator: what follows it is
// copied to the installed system's boot loader, so the recipe's installer-only arguments go
// before it.

// ArgAction is what a recipe did with one argument of the ISO's boot entry.
type ArgAction string

// ArgAction values.
const (
	ArgKept      ArgAction = "kept"
	ArgRewritten ArgAction = "rewritten"
	ArgDropped   ArgAction = "dropped"
)

// ArgDecision records what happened to one argument of the ISO's own boot entry.
type ArgDecision struct {
	Arg    string    `json:"arg"`
	Action ArgAction `json:"action"`
	// Now is what replaced the argument on the final command line (rewritten only).
	Now string `json:"now,omitempty"`
	Why string `json:"why,omitempty"`
}

// argSeparator is debian-installer's and casper's "---".
const argSeparator = "---"

// argKey is the part of an argument before '=' (the whole word for a flag).
func argKey(w string) string {
	k, _, _ := strings.Cut(w, "=")
	return k
}

// mediumWhy returns why an ISO argument must not reach a kernel booted over the network, and
// its replacement when it can be rewritten to point at the ISO over HTTP ("" replacement:
// drop it). ok is false for arguments that are kept.
func (b *builder) mediumWhy(w string) (why, now string, ok bool) {
	key, val, hasVal := strings.Cut(w, "=")
	lk := strings.ToLower(key)
	lv := strings.ToLower(val)
	switch {
	case strings.Contains(w, "$"):
		return "GRUB variable: iPXE would expand it to nothing", "", true
	case checkArgs(w) != nil:
		return "iPXE would end the kernel line at this word", "", true
	case lk == "initrd" || lk == "boot_image":
		return "names a file of the ISO's own boot loader; fleetboot's script names its initrds", "", true
	case lk == "vga":
		// vga=ask waits at a prompt; a VESA mode number (vga=788) hangs or blanks a machine
		// whose (often virtual or BMC) display lacks the mode.
		return "video-mode prompt or VESA mode: can hang a headless machine", "", true
	case lk == "iso-scan/filename" || lk == "findiso" || lk == "img_dev" || lk == "img_loop" ||
		lk == "isoloop" || lk == "iso_path" || lk == "fromiso":
		return "locates the ISO as a file on a local drive", "", true
	case lk == "archisolabel" || lk == "archisodevice" || lk == "archisosearchuuid" || lk == "archisosearchfilename":
		return "locates the archiso medium by label or device; archiso_http_srv= fetches it over HTTP", "", true
	case strings.HasPrefix(lk, "cdrom-detect/"):
		return "debian-installer CD detection: there is no CD in a network boot", "", true
	case lk == "live-media" || lk == "bootfrom" || lk == "alpine_dev" || lk == "cdrom" || lk == "live-media-uuid":
		return "names the boot medium's device", "", true
	case lk == "rd.live.check" || lk == "check" || lk == "integrity-check" || lk == "mediacheck":
		return "checks the boot medium, which a network boot does not have", "", true
	case (lk == "file" || lk == "preseed/file") && strings.HasPrefix(val, "/cdrom/") && b.r.Family != FamilyUbuntu:
		// casper mounts the ISO it downloads at /cdrom, so Ubuntu keeps file=/cdrom/….
		return "preseed file on a CD that a network boot does not have", "", true
	case (lk == "inst.ks" || lk == "ks") && hasVal:
		if p, ok := mediumPath(val); ok {
			if actual, found := b.v.file(p); found {
				return "kickstart on the boot medium: fetched from the ISO over HTTP", key + "=" + b.url(actual), true
			}
			return "kickstart on a local medium that is not on this ISO", "", true
		}
	case hasVal && (lk == "root" || lk == "inst.stage2" || lk == "stage2" || lk == "inst.repo" || lk == "repo" ||
		lk == "method" || lk == "install"):
		if mediumValue(lv) {
			return "locates the installer on the boot medium by label or device", "", true
		}
	}
	return "", "", false
}

// mediumValue says whether a root=/inst.stage2=/install= value names a local medium rather than
// a network location.
func mediumValue(v string) bool {
	for _, p := range []string{"hd:", "cdrom", "cd:", "live:cdlabel=", "live:label=", "live:uuid=", "cdlabel=", "label=", "uuid=", "/dev/sr", "/dev/cdrom", "usb:", "disk:", "dvd:"} {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

// mediumPath returns the path inside the medium of an Anaconda-style location
// (cdrom:/ks.cfg, hd:LABEL=X:/ks.cfg, hd:sr0:/ks.cfg).
func mediumPath(v string) (string, bool) {
	lv := strings.ToLower(v)
	if !strings.HasPrefix(lv, "cdrom:") && !strings.HasPrefix(lv, "hd:") {
		return "", false
	}
	i := strings.LastIndex(v, ":")
	p := v[i+1:]
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	return path.Clean(p), true
}

// baseEntry is the ISO boot entry a recipe entry starts from: the first entry of the ISO's
// configs that loads the same kernel, preferring one with the same first initrd.
func (b *builder) baseEntry(e Entry) (ConfigEntry, bool) {
	var byKernel *ConfigEntry
	for i := range b.r.Entries {
		c := &b.r.Entries[i]
		if c.Kernel != e.Kernel {
			continue
		}
		if len(e.Initrds) > 0 && len(c.Initrds) > 0 && c.Initrds[0] == e.Initrds[0].Path {
			return *c, true
		}
		if byKernel == nil {
			byKernel = c
		}
	}
	if byKernel != nil {
		return *byKernel, true
	}
	return ConfigEntry{}, false
}

// mergeArgs builds an entry's final command line from the ISO entry's arguments, the recipe's
// and the operator's (console, then the profile's extra args), recording what happened to each
// ISO argument.
func (b *builder) mergeArgs(isoArgs, recipeArgs, operatorArgs string) (string, []ArgDecision) {
	recipe := strings.Fields(recipeArgs)
	operator := strings.Fields(operatorArgs)
	recipeByKey := map[string]string{}
	for _, w := range recipe {
		if w != argSeparator {
			if _, dup := recipeByKey[argKey(w)]; !dup {
				recipeByKey[argKey(w)] = w
			}
		}
	}
	recipeWords := map[string]bool{}
	for _, w := range recipe {
		recipeWords[w] = true
	}
	operatorKeys := map[string]bool{}
	operatorWords := map[string]bool{}
	for _, w := range operator {
		operatorKeys[argKey(w)] = true
		operatorWords[w] = true
	}
	// Operator args replace recipe args with the same key.
	var rec []string
	for _, w := range recipe {
		if w == argSeparator || !operatorKeys[argKey(w)] {
			rec = append(rec, w)
		}
	}

	var pre, post []string
	var decisions []ArgDecision
	afterSep := false
	seen := map[string]bool{}
	for _, w := range strings.Fields(isoArgs) {
		if w == argSeparator && !afterSep {
			afterSep = true
			decisions = append(decisions, ArgDecision{Arg: w, Action: ArgKept,
				Why: "separator: what follows is also given to the installed system"})
			continue
		}
		d := ArgDecision{Arg: w, Action: ArgKept}
		keep := true
		if why, now, ok := b.mediumWhy(w); ok {
			d.Action, d.Why, keep = ArgDropped, why, false
			if now != "" {
				w = now
				d.Action, d.Now, keep = ArgRewritten, now, true
			}
		}
		key, hasVal := argKey(w), strings.Contains(w, "=")
		switch {
		case keep && operatorWords[w]:
			d.Why, keep = "also given by the profile, which places it last", false
		case hasVal && operatorKeys[key]:
			d.Action, d.Now, keep = ArgDropped, "", false
			d.Why = "the profile sets " + key + "="
		case keep && recipeWords[w]:
			d.Why, keep = "the recipe needs it too", false
		case hasVal && listKeys[key] && recipeByKey[key] != "":
			// Both lists are needed: the ISO's (its own drivers) and the recipe's (what the
			// network boot loads); the union replaces the recipe's word.
			merged := unionList(recipeByKey[key], w)
			for i, r := range rec {
				if r == recipeByKey[key] {
					rec[i] = merged
				}
			}
			recipeByKey[key] = merged
			d.Action, d.Now, keep = ArgRewritten, merged, false
			d.Why = "merged with the list the recipe needs"
		case hasVal && recipeByKey[key] != "":
			d.Action, d.Now, keep = ArgRewritten, recipeByKey[key], false
			d.Why = joinWhy(d.Why, "fleetboot's recipe sets "+key+"= for booting over HTTP")
		}
		if keep && seen[w] {
			d.Action, d.Why, keep = ArgDropped, "duplicate", false
		}
		if keep {
			seen[w] = true
			if afterSep {
				post = append(post, w)
			} else {
				pre = append(pre, w)
			}
		}
		decisions = append(decisions, d)
	}
	words := append(pre, rec...)
	if afterSep {
		words = append(words, argSeparator)
		words = append(words, post...)
	}
	words = append(words, operator...)
	return strings.Join(words, " "), decisions
}

// listKeys are arguments whose value is a comma-separated list that the ISO and the recipe
// both contribute to (Alpine's modules=loop,squashfs,sd-mod,usb-storage).
var listKeys = map[string]bool{"modules": true}

// unionList returns key=<recipe's items, then the ISO's items not already there>.
func unionList(recipeWord, isoWord string) string {
	key, rv, _ := strings.Cut(recipeWord, "=")
	_, iv, _ := strings.Cut(isoWord, "=")
	items := strings.Split(rv, ",")
	have := map[string]bool{}
	for _, it := range items {
		have[it] = true
	}
	for _, it := range strings.Split(iv, ",") {
		if it != "" && !have[it] {
			have[it] = true
			items = append(items, it)
		}
	}
	return key + "=" + strings.Join(items, ",")
}

func joinWhy(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
