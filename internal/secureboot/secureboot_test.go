package secureboot

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

var year = 365 * 24 * time.Hour

func TestDebianShimTrustsDebianKernelAndGRUB(t *testing.T) {
	shim := debianShimParsed(t)
	if len(shim.Certs) != 1 || shim.Certs[0].Subject.CommonName != "Debian Secure Boot CA" {
		t.Fatalf("vendor certs = %v, want Debian Secure Boot CA", shim.Certs)
	}
	if len(shim.DeniedHashes) == 0 {
		t.Error("Debian's shim carries a vendor_dbx of revoked image hashes; none read")
	}
	if !strings.Contains(shim.SBAT, "shim.debian") {
		t.Errorf("SBAT = %q", shim.SBAT)
	}
	for _, f := range []struct{ path, pkg, signer string }{
		{debianKernel, "debian-installer-12-netboot-amd64", "CN=Debian Secure Boot Signer 2022 - linux"},
		{debianARM64, "debian-installer-12-netboot-arm64", "CN=Debian Secure Boot Signer 2022 - linux"},
		{debianGRUB, "grub-efi-amd64-signed", "CN=Debian Secure Boot Signer 2022 - grub2"},
	} {
		t.Run(f.path, func(t *testing.T) {
			b := debianFile(t, f.path, f.pkg)
			rep := Inspect(bytes.NewReader(b), int64(len(b)))
			if !rep.PE || !rep.Signed || !rep.DigestMatches || rep.Problem != "" {
				t.Fatalf("report = %+v", rep)
			}
			if len(rep.Signers) != 1 || rep.Signers[0].Subject != f.signer || rep.Signers[0].Issuer != "CN=Debian Secure Boot CA" {
				t.Errorf("signers = %+v, want %s issued by the Debian Secure Boot CA", rep.Signers, f.signer)
			}
			v := shim.Verify(parseBytes(t, b))
			if !v.Trusted || v.By != "CN=Debian Secure Boot CA" {
				t.Errorf("verdict = %+v, want trusted by CN=Debian Secure Boot CA", v)
			}
		})
	}
}

func TestDebianShimItselfIsMicrosoftSigned(t *testing.T) {
	b := debianFile(t, debianShim, "shim-signed")
	rep := Inspect(bytes.NewReader(b), int64(len(b)))
	if !rep.Signed || !rep.DigestMatches || rep.Arch != "x86_64" {
		t.Fatalf("report = %+v", rep)
	}
	for _, s := range rep.Signers {
		if !strings.Contains(s.Issuer, "Microsoft") {
			t.Errorf("signer %+v, want a Microsoft UEFI CA issuer", s)
		}
	}
	// shim does not trust itself: Microsoft's CA is in the firmware's db, not in shim.
	if v := debianShimParsed(t).Verify(parseBytes(t, b)); v.Trusted {
		t.Errorf("verdict = %+v, want untrusted (Microsoft-signed)", v)
	}
}

func TestUnsignedImage(t *testing.T) {
	img := buildPE(testSection{".text", []byte("hello")})
	rep := Inspect(bytes.NewReader(img), int64(len(img)))
	if !rep.PE || rep.Signed || rep.DigestMatches || rep.Problem != "" || rep.Arch != "x86_64" {
		t.Errorf("report = %+v, want an unsigned x86_64 PE", rep)
	}
	shim := debianShimParsed(t)
	if v := shim.Verify(parseBytes(t, img)); v.Trusted || v.Reason != "not signed" {
		t.Errorf("verdict = %+v", v)
	}
}

func TestNotPE(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":      nil,
		"text":       []byte(strings.Repeat("#!/bin/sh\necho hi\n", 10)),
		"mz only":    append([]byte("MZ"), make([]byte, 100)...),
		"bad pe off": func() []byte { b := buildPE(); binary.LittleEndian.PutUint32(b[0x3c:], 1<<30); return b }(),
		"bad magic":  func() []byte { b := buildPE(); b[0x40+24] = 7; return b }(),
		"short":      buildPE(testSection{".text", []byte("x")})[:0x150],
		"bad section": func() []byte {
			b := buildPE(testSection{".text", []byte("x")})
			b[0x148+20] = 0xff
			b[0x148+23] = 0x7f
			return b
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			rep := Inspect(bytes.NewReader(b), int64(len(b)))
			if rep.PE || rep.Signed || rep.Problem == "" {
				t.Errorf("report = %+v, want not PE with a problem", rep)
			}
			if _, err := Parse(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrNotPE) {
				t.Errorf("Parse error = %v, want ErrNotPE", err)
			}
		})
	}
}

// A kernel signed with a certificate of one's own is signed, matches its bytes, and is not
// trusted by Debian's shim: exactly the custom-kernel case that needs a MOK.
func TestSelfSignedKernelNotTrustedByDebianShim(t *testing.T) {
	kernel := unsignedDebianKernel(t)
	ca := newCert(t, "Test Kernel CA", nil, true, time.Now().Add(10*year))
	leaf := newCert(t, "Test Kernel Signer", ca, false, time.Now().Add(year))
	signed := sign(t, kernel, leaf, ca)

	rep := Inspect(bytes.NewReader(signed), int64(len(signed)))
	if !rep.Signed || !rep.DigestMatches || rep.Problem != "" {
		t.Fatalf("report = %+v, want signed with a matching digest", rep)
	}
	if len(rep.Signers) != 1 || rep.Signers[0].Subject != "CN=Test Kernel Signer" || rep.Signers[0].Issuer != "CN=Test Kernel CA" {
		t.Errorf("signers = %+v", rep.Signers)
	}
	v := debianShimParsed(t).Verify(parseBytes(t, signed))
	if v.Trusted || !strings.Contains(v.Reason, "does not chain") || !strings.Contains(v.Reason, "Test Kernel Signer") {
		t.Errorf("verdict = %+v, want untrusted: does not chain to the vendor certificate", v)
	}
	// The same kernel under a shim whose vendor certificate is that CA is trusted.
	own, err := ParseShim(parseBytes(t, shimImage(ca.cert.Raw, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if v := own.Verify(parseBytes(t, signed)); !v.Trusted || v.By != "CN=Test Kernel CA" {
		t.Errorf("own shim verdict = %+v, want trusted by CN=Test Kernel CA", v)
	}
}

// unsignedDebianKernel is Debian's signed kernel with its signature taken off.
func unsignedDebianKernel(t *testing.T) []byte {
	b := debianFile(t, debianKernel, "debian-installer-12-netboot-amd64")
	im := parseBytes(t, b)
	if im.certSize == 0 {
		t.Fatal("Debian's kernel is not signed")
	}
	out := append([]byte(nil), b[:im.certOff]...)
	binary.LittleEndian.PutUint64(out[im.certDirOff:], 0)
	return out
}

func TestModifiedImageDoesNotMatchItsSignature(t *testing.T) {
	b := append([]byte(nil), debianFile(t, debianKernel, "debian-installer-12-netboot-amd64")...)
	im := parseBytes(t, b)
	b[im.Sections[len(im.Sections)-1].Offset+100] ^= 0x55
	rep := Inspect(bytes.NewReader(b), int64(len(b)))
	if !rep.Signed || rep.DigestMatches || !strings.Contains(rep.Problem, "modified after signing") {
		t.Errorf("report = %+v, want a digest mismatch", rep)
	}
	if v := debianShimParsed(t).Verify(parseBytes(t, b)); v.Trusted || !strings.Contains(v.Reason, "modified") {
		t.Errorf("verdict = %+v", v)
	}
}

// The digest covers everything but the checksum and the certificate directory: changing
// those keeps the signature valid, as for shim (sbsign rewrites the checksum after signing).
func TestChecksumIsNotCovered(t *testing.T) {
	b := append([]byte(nil), debianFile(t, debianKernel, "debian-installer-12-netboot-amd64")...)
	im := parseBytes(t, b)
	binary.LittleEndian.PutUint32(b[im.checksumOff:], 0xdeadbeef)
	if v := debianShimParsed(t).Verify(parseBytes(t, b)); !v.Trusted {
		t.Errorf("verdict = %+v, want trusted", v)
	}
}

func TestShimChainRules(t *testing.T) {
	now := time.Now()
	root := newCert(t, "Vendor Root", nil, true, now.Add(10*year))
	expiredRoot := newCert(t, "Expired Vendor Root", nil, true, now.Add(-time.Hour))
	inter := newCert(t, "Vendor Intermediate", root, true, now.Add(5*year))
	leaf := newCert(t, "Vendor Signer", inter, false, now.Add(year))
	leafOfExpired := newCert(t, "Signer Under Expired Root", expiredRoot, false, now.Add(year))
	notCA := newCert(t, "Not A CA", root, false, now.Add(year))
	underNotCA := newCert(t, "Signed By A Leaf", notCA, false, now.Add(year))
	other := newCert(t, "Other Root", nil, true, now.Add(10*year))

	img := buildPE(testSection{".text", []byte("payload")})
	// A vendor_db: two certificates of different sizes cannot share one list, so one each.
	dbTwo := append(signatureList(efiCertX509, other.cert.Raw), signatureList(efiCertX509, root.cert.Raw)...)
	tests := []struct {
		name    string
		anchors []byte // vendor_authorized
		deauth  []byte // vendor_deauthorized
		signed  []byte
		trusted bool
		by      string
		reason  string
	}{
		{"chain through an intermediate the signature carries", root.cert.Raw, nil, sign(t, img, leaf, inter, root), true, "CN=Vendor Root", ""},
		{"intermediate missing from the signature", root.cert.Raw, nil, sign(t, img, leaf), false, "", "does not chain"},
		{"the signer itself is the vendor certificate (partial chain)", leaf.cert.Raw, nil, sign(t, img, leaf, inter), true, "CN=Vendor Signer", ""},
		{"intermediate as vendor certificate", inter.cert.Raw, nil, sign(t, img, leaf, inter), true, "CN=Vendor Intermediate", ""},
		{"expired vendor root still counts (no clock in firmware)", expiredRoot.cert.Raw, nil, sign(t, img, leafOfExpired, expiredRoot), true, "CN=Expired Vendor Root", ""},
		{"a non-CA certificate cannot issue", root.cert.Raw, nil, sign(t, img, underNotCA, notCA, root), false, "", "does not chain"},
		{"other vendor", other.cert.Raw, nil, sign(t, img, leaf, inter, root), false, "", "does not chain"},
		{"vendor_db signature lists", dbTwo, nil, sign(t, img, leaf, inter), true, "CN=Vendor Root", ""},
		{"vendor_dbx revokes the intermediate", root.cert.Raw, signatureList(efiCertX509, inter.cert.Raw), sign(t, img, leaf, inter, root), false, "", "vendor_dbx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			shim, err := ParseShim(parseBytes(t, shimImage(tc.anchors, tc.deauth)))
			if err != nil {
				t.Fatal(err)
			}
			v := shim.Verify(parseBytes(t, tc.signed))
			if v.Trusted != tc.trusted || v.By != tc.by || !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("verdict = %+v, want trusted=%v by %q reason ~%q", v, tc.trusted, tc.by, tc.reason)
			}
		})
	}
}

func TestShimHashLists(t *testing.T) {
	img := buildPE(testSection{".text", []byte("hash-allowed payload")})
	d, err := parseBytes(t, img).Digest(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	other := sha256.Sum256([]byte("x"))
	allow, err := ParseShim(parseBytes(t, shimImage(signatureList(efiCertSHA256, other[:], d), nil)))
	if err != nil {
		t.Fatal(err)
	}
	if v := allow.Verify(parseBytes(t, img)); !v.Trusted || v.By != "vendor_db hash" {
		t.Errorf("vendor_db hash: verdict = %+v", v)
	}
	ca := newCert(t, "CA", nil, true, time.Now().Add(year))
	signed := sign(t, img, ca)
	sd, _ := parseBytes(t, signed).Digest(crypto.SHA256)
	deny, err := ParseShim(parseBytes(t, shimImage(ca.cert.Raw, signatureList(efiCertSHA256, sd))))
	if err != nil {
		t.Fatal(err)
	}
	if v := deny.Verify(parseBytes(t, signed)); v.Trusted || !strings.Contains(v.Reason, "revoked") {
		t.Errorf("vendor_dbx hash: verdict = %+v", v)
	}
	if !strings.HasPrefix(deny.SBAT, "sbat,1,") || strings.ContainsRune(deny.SBAT, 0) {
		t.Errorf("SBAT = %q", deny.SBAT)
	}
}

func TestParseShimRejects(t *testing.T) {
	ca := newCert(t, "CA", nil, true, time.Now().Add(year))
	for name, img := range map[string][]byte{
		"no vendor_cert": buildPE(testSection{".text", []byte("x")}),
		"short table":    buildPE(testSection{".vendor_cert", []byte{1, 2, 3}}),
		"offset outside": func() []byte {
			s := vendorCertSection(ca.cert.Raw, nil)
			binary.LittleEndian.PutUint32(s[8:], 1<<20)
			return buildPE(testSection{".vendor_cert", s})
		}(),
		"garbage cert": buildPE(testSection{".vendor_cert", vendorCertSection([]byte("not a certificate at all, nor a list"), nil)}),
		"bad dbx":      buildPE(testSection{".vendor_cert", vendorCertSection(ca.cert.Raw, []byte("garbage list of thirty bytes!!"))}),
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := ParseShim(parseBytes(t, img)); err == nil {
				t.Errorf("ParseShim = %+v, want an error", s)
			}
		})
	}
}

func TestSignatureTableErrors(t *testing.T) {
	ca := newCert(t, "CA", nil, true, time.Now().Add(year))
	signed := sign(t, buildPE(testSection{".text", []byte("x")}), ca)
	im := parseBytes(t, signed)
	for name, mutate := range map[string]func(b []byte){
		"bad revision": func(b []byte) { b[im.certOff+4] = 9 },
		"bad length":   func(b []byte) { binary.LittleEndian.PutUint32(b[im.certOff:], 3) },
		"garbage der":  func(b []byte) { copy(b[im.certOff+8:], "garbage garbage garbage") },
		"not at end": func(b []byte) {
			binary.LittleEndian.PutUint32(b[im.certDirOff+4:], uint32(im.certSize-8))
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := append([]byte(nil), signed...)
			mutate(b)
			rep := Inspect(bytes.NewReader(b), int64(len(b)))
			if rep.DigestMatches || rep.Problem == "" {
				t.Errorf("report = %+v, want a problem", rep)
			}
			s, _ := ParseShim(parseBytes(t, shimImage(ca.cert.Raw, nil)))
			if v := s.Verify(parseBytes(t, b)); v.Trusted {
				t.Errorf("verdict = %+v, want untrusted", v)
			}
		})
	}
}

func TestLongSectionNames(t *testing.T) {
	im := parseBytes(t, buildPE(testSection{".text", []byte("a")}, testSection{".vendor_cert", []byte("b")}, testSection{".a_long_name", []byte("c")}))
	var names []string
	for _, s := range im.Sections {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != ".text .vendor_cert .a_long_name" {
		t.Errorf("names = %s", got)
	}
	if b, ok, err := im.Section(".a_long_name"); err != nil || !ok || string(b) != "c" {
		t.Errorf("Section = %q %v %v", b, ok, err)
	}
}
