package secureboot

import (
	"bytes"
	"testing"
	"time"
)

// FuzzImage feeds mutated PE images, signed and unsigned, shims and not, to every parser
// here: Inspect, ParseShim and Shim.Verify must never panic, and an image Verify trusts
// must be one Inspect calls signed with a matching digest.
// Run: go test -fuzz FuzzImage ./internal/secureboot/
func FuzzImage(f *testing.F) {
	ca := newCert(f, "Fuzz CA", nil, true, time.Now().Add(year))
	leaf := newCert(f, "Fuzz Signer", ca, false, time.Now().Add(year))
	shim, err := ParseShim(parseBytes(f, shimImage(ca.cert.Raw, nil)))
	if err != nil {
		f.Fatal(err)
	}
	unsigned := buildPE(testSection{".text", []byte("fuzz payload")}, testSection{".sbat", []byte("sbat,1\n")})
	f.Add(unsigned)
	f.Add(sign(f, unsigned, leaf, ca))
	f.Add(shimImage(ca.cert.Raw, nil))
	f.Add(shimImage(append(signatureList(efiCertX509, ca.cert.Raw), signatureList(efiCertSHA256, make([]byte, 32))...), signatureList(efiCertSHA256, make([]byte, 32))))
	f.Add(buildPE(testSection{"mods", grubMods("/boot/grub", "normal (memdisk)/grub.cfg\n")}))
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep := Inspect(bytes.NewReader(b), int64(len(b)))
		im, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if rep.PE {
				t.Fatalf("Parse failed (%v) but Inspect reported a PE", err)
			}
			return
		}
		GrubInfo(im)
		if s, err := ParseShim(im); err == nil {
			s.Verify(im)
		}
		v := shim.Verify(im)
		if v.Trusted && v.By != "vendor_db hash" && (!rep.Signed || !rep.DigestMatches) {
			t.Fatalf("trusted (%+v) but report %+v", v, rep)
		}
	})
}
