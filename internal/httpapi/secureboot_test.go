package httpapi_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/secureboot"
)

// Debian's signed binaries, from installed packages (scripts/deps.sh installs them).
var debianSigned = map[string]string{
	"/usr/lib/shim/shimx64.efi.signed":                                            "shim-signed",
	"/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed":                           "grub-efi-amd64-signed",
	"/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux": "debian-installer-12-netboot-amd64",
}

func readDebian(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("%s not installed (package %s)", path, debianSigned[path])
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stripSignature returns a signed PE without its certificate table: the same kernel, unsigned.
func stripSignature(t *testing.T, b []byte) []byte {
	t.Helper()
	peOff := binary.LittleEndian.Uint32(b[0x3c:])
	dir := int(peOff) + 24 + 112 + 4*8 // PE32+ data directory 4
	off := binary.LittleEndian.Uint32(b[dir:])
	if off == 0 || int(off) > len(b) {
		t.Fatal("not a signed PE32+ image")
	}
	out := append([]byte(nil), b[:off]...)
	binary.LittleEndian.PutUint64(out[dir:], 0)
	return out
}

// An ISO in d-i mini.iso layout with Debian's signed kernel and its own signed shim + GRUB is
// Secure Boot ready under its own shim; the same ISO with the signature taken off the kernel
// (and no pair) is not, under Debian's shim either. Both show in GET /api/v1/isos/{id}, and a
// profile on each says so when it is saved and read.
func TestSecureBootReadinessOverTheAPI(t *testing.T) {
	shimBytes := readDebian(t, "/usr/lib/shim/shimx64.efi.signed")
	gcd := readDebian(t, "/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed")
	kernel := readDebian(t, "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux")
	e := newISOEnv(t)
	im, err := secureboot.Parse(bytes.NewReader(shimBytes), int64(len(shimBytes)))
	if err != nil {
		t.Fatal(err)
	}
	debianShim, err := secureboot.ParseShim(im)
	if err != nil {
		t.Fatal(err)
	}

	info := []byte("Debian GNU/Linux 12.8.0 \"Bookworm\" - Official amd64 NETINST with firmware 20241109-11:04\n")
	signedISO := buildISO(t, map[string][]byte{
		".disk/info": info, "linux": kernel, "initrd.gz": patternBytes(11, 5000),
		"EFI/boot/bootx64.efi": shimBytes, "EFI/boot/grubx64.efi": gcd,
	}, nil)
	unsignedISO := buildISO(t, map[string][]byte{
		".disk/info": info, "linux": stripSignature(t, kernel), "initrd.gz": patternBytes(11, 5000),
	}, nil)

	type readiness struct {
		Detected struct {
			Family     string                   `json:"family"`
			SecureBoot *secureboot.ISOReadiness `json:"secure_boot"`
		} `json:"detected"`
	}
	getISO := func(id string) readiness {
		res, b := e.do(t, "GET", "/api/v1/isos/"+id, testToken, nil, nil)
		if res.StatusCode != 200 {
			t.Fatalf("GET iso: %d %s", res.StatusCode, b)
		}
		var r readiness
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.Detected.SecureBoot == nil {
			t.Fatalf("no secure_boot in %s", b)
		}
		return r
	}
	putProfile := func(name, iso string) inventory.Profile {
		body, _ := json.Marshal(inventory.Profile{ISO: iso})
		res, b := e.do(t, "PUT", "/api/v1/profiles/"+name, testToken, map[string]string{"Content-Type": "application/json"}, bytes.NewReader(body))
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("PUT profile: %d %s", res.StatusCode, b)
		}
		var p inventory.Profile
		json.Unmarshal(b, &p)
		return p
	}

	// Published while the server has no shim of its own (a build without the embedded chain):
	// the stored verdict says so; once it has Debian's, the profile's verdict is redone.
	noPair := e.putISO(t, "debian-nopair", buildISO(t, map[string][]byte{
		".disk/info": info, "linux": kernel, "initrd.gz": patternBytes(11, 5000)}, nil), http.StatusCreated)
	r := getISO(noPair.ID)
	if ent, _ := r.Detected.SecureBoot.Entry("install"); ent.Trusted || !strings.Contains(ent.Reason, "no signed shim for x86_64") {
		t.Errorf("without a shim: %+v", ent)
	}
	e.prov.Shims = map[string]*secureboot.Shim{"x86_64": debianShim}
	if p := putProfile("deb-nopair", noPair.ID); p.SecureBoot == nil || !p.SecureBoot.Ready || p.SecureBoot.Shim != secureboot.ShimDebian {
		t.Errorf("profile on the pair-less ISO with Debian's shim: %+v", p.SecureBoot)
	}

	signed := e.putISO(t, "debian-signed", signedISO, http.StatusCreated)
	r = getISO(signed.ID)
	if r.Detected.Family != "debian" || len(r.Detected.SecureBoot.Pairs) != 1 {
		t.Fatalf("signed ISO: %+v", r.Detected)
	}
	if p := r.Detected.SecureBoot.Pairs[0]; p.Shim != "/EFI/boot/bootx64.efi" || p.Loader != "grubx64.efi" || !p.GRUBTrusted || p.Prefix != "/boot/grub" {
		t.Errorf("pair = %+v", p)
	}
	// fleetboot serves the ISO's own pair, whose shim trusts Debian's kernel. Its GRUB (the CD
	// build of the installed grub-efi-amd64-signed) decides HTTP Boot: before 2.12, HTTP Boot
	// clients get Debian's shim, which trusts the kernel too.
	ent, ok := r.Detected.SecureBoot.Entry("install")
	if !ok || !ent.Trusted || ent.Shim != "iso:/EFI/boot/bootx64.efi" || ent.By != "CN=Debian Secure Boot CA" || ent.ISOShim != nil ||
		ent.Signature == nil || len(ent.Signature.Signers) != 1 || ent.Signature.Signers[0].Subject != "CN=Debian Secure Boot Signer 2022 - linux" {
		t.Errorf("install entry = %+v", ent)
	}
	pair := r.Detected.SecureBoot.Pairs[0]
	if pair.HTTPBoot != (ent.HTTPBoot == nil) || (ent.HTTPBoot != nil && (!ent.HTTPBoot.Trusted || !strings.Contains(ent.HTTPBoot.Reason, "over UEFI HTTP Boot machines get Debian's shim"))) {
		t.Errorf("pair http_boot %v (%s), entry http_boot %+v", pair.HTTPBoot, pair.HTTPBootProblem, ent.HTTPBoot)
	}

	// The pair is served out of the ISO: the shim and GRUB at /isopair/<id>/ (GRUB also where
	// shim spells it, with a double slash), the bootstrap config at the GRUB's config paths;
	// nothing else.
	for _, c := range []struct {
		path string
		want []byte
	}{
		{"/isopair/" + signed.ID + "/bootx64.efi", shimBytes},
		{"/isopair/" + signed.ID + "//grubx64.efi", gcd},
		{"/isopair/" + signed.ID + "/grub.cfg", nil},
		{"/boot/grub/grub.cfg", nil},
		{"/boot/grub/x86_64-efi/grub.cfg", nil},
	} {
		res, b := e.do(t, "GET", c.path, "", nil, nil)
		switch {
		case res.StatusCode != http.StatusOK:
			t.Errorf("%s: %d %s", c.path, res.StatusCode, b)
		case c.want != nil && !bytes.Equal(b, c.want):
			t.Errorf("%s: %d bytes, not the ISO's file", c.path, len(b))
		case c.want == nil && !bytes.Contains(b, []byte("/grub/mac/${net_default_mac}/sb-${fb_sb}.cfg")):
			t.Errorf("%s is not the bootstrap config:\n%s", c.path, b)
		}
	}
	for _, p := range []string{"/isopair/" + signed.ID + "/mmx64.efi", "/isopair/" + noPair.ID + "/bootx64.efi", "/isopair/" + signed.ID + "/revocations_sbat.efi",
		"/boot/grub/other.cfg", "/isopair/" + signed.ID + "/../../linux"} {
		if res, b := e.do(t, "GET", p, "", nil, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d %s, want 404", p, res.StatusCode, b)
		}
	}
	p := putProfile("deb-signed", signed.ID)
	if p.SecureBoot == nil || !p.SecureBoot.Ready || p.SecureBoot.Entry != "install" || p.SecureBoot.TrustedBy != "CN=Debian Secure Boot CA" {
		t.Errorf("profile secure_boot = %+v", p.SecureBoot)
	}

	unsigned := e.putISO(t, "debian-unsigned", unsignedISO, http.StatusCreated)
	r = getISO(unsigned.ID)
	ent, ok = r.Detected.SecureBoot.Entry("install")
	if len(r.Detected.SecureBoot.Pairs) != 0 || !ok || ent.Trusted || ent.Shim != secureboot.ShimDebian || ent.Reason != "not signed" ||
		ent.Signature == nil || ent.Signature.Signed || !ent.Signature.PE {
		t.Errorf("unsigned ISO: pairs %+v, install entry %+v", r.Detected.SecureBoot.Pairs, ent)
	}
	p = putProfile("deb-unsigned", unsigned.ID)
	if p.SecureBoot == nil || p.SecureBoot.Ready || p.SecureBoot.Reason != "not signed" {
		t.Errorf("profile secure_boot = %+v", p.SecureBoot)
	}
	// Listing and reading the profile carry the verdict too.
	res, b := e.do(t, "GET", "/api/v1/profiles", testToken, nil, nil)
	if res.StatusCode != 200 || strings.Count(string(b), `"secure_boot"`) != 3 || !strings.Contains(string(b), `"ready":true`) {
		t.Errorf("profiles: %d %s", res.StatusCode, b)
	}
}
