package secureboot

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
)

// Test fixtures are built here, in Go: a minimal PE/COFF image, a self-made CA and signing
// certificate, Authenticode signatures made with the pkcs7 module, and a "shim" that is just
// a PE with a .vendor_cert section. No third-party binary is committed; the Debian-signed
// ones come from installed packages (debianFile).

// testSection is one section of a built PE.
type testSection struct {
	name string
	data []byte
}

// buildPE returns a PE32+ x86-64 image with the given sections. Names over 8 bytes go to
// the COFF string table, as GNU ld writes them.
func buildPE(secs ...testSection) []byte {
	const (
		peOff   = 0x40
		optSize = 240
		align   = 0x200
	)
	secTab := peOff + 24 + optSize
	headers := alignUp(secTab+40*len(secs), align)
	var strtab []byte
	raw := make([][8]byte, len(secs))
	for i, s := range secs {
		if len(s.name) > 8 {
			copy(raw[i][:], "/"+itoa(4+len(strtab)))
			strtab = append(append(strtab, s.name...), 0)
		} else {
			copy(raw[i][:], s.name)
		}
	}
	img := make([]byte, headers)
	img[0], img[1] = 'M', 'Z'
	binary.LittleEndian.PutUint32(img[0x3c:], peOff)
	copy(img[peOff:], "PE\x00\x00")
	coff := img[peOff+4:]
	binary.LittleEndian.PutUint16(coff[0:], MachineAMD64)
	binary.LittleEndian.PutUint16(coff[2:], uint16(len(secs)))
	binary.LittleEndian.PutUint16(coff[16:], optSize)
	binary.LittleEndian.PutUint16(coff[18:], 0x2022) // executable, large address aware, DLL
	opt := img[peOff+24:]
	binary.LittleEndian.PutUint16(opt[0:], 0x20b)
	binary.LittleEndian.PutUint32(opt[32:], 0x1000) // SectionAlignment
	binary.LittleEndian.PutUint32(opt[36:], align)  // FileAlignment
	binary.LittleEndian.PutUint32(opt[60:], uint32(headers))
	binary.LittleEndian.PutUint16(opt[68:], 10) // EFI application
	binary.LittleEndian.PutUint32(opt[108:], 16)
	rva := uint32(0x1000)
	for i, s := range secs {
		h := img[secTab+40*i:]
		copy(h[:8], raw[i][:])
		off := len(img)
		size := alignUp(len(s.data), align)
		binary.LittleEndian.PutUint32(h[8:], uint32(len(s.data)))
		binary.LittleEndian.PutUint32(h[12:], rva)
		binary.LittleEndian.PutUint32(h[16:], uint32(size))
		binary.LittleEndian.PutUint32(h[20:], uint32(off))
		binary.LittleEndian.PutUint32(h[36:], 0x40000040) // initialised data, readable
		img = append(img, s.data...)
		img = append(img, make([]byte, size-len(s.data))...)
		rva += uint32(alignUp(len(s.data), 0x1000))
	}
	// img has grown: coff and opt point into its old backing array.
	binary.LittleEndian.PutUint32(img[peOff+24+56:], rva) // SizeOfImage
	if len(strtab) > 0 {
		binary.LittleEndian.PutUint32(img[peOff+4+8:], uint32(len(img))) // PointerToSymbolTable, 0 symbols
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(4+len(strtab)))
		img = append(append(img, n[:]...), strtab...)
	}
	return img
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// testKey is a certificate with its key.
type testKey struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var serial int64

// newCert makes a certificate named cn, self-signed when parent is nil. CAs get the CA basic
// constraint and certificate-sign usage; signing certificates get neither and no extended
// key usage at all, like many real code-signing certificates.
func newCert(t testing.TB, cn string, parent *testKey, ca bool, notAfter time.Time) *testKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1000 + serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-48 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{cert: c, key: key}
}

var oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}

// sign appends an Authenticode signature by signer (carrying the chain certificates) to the
// unsigned image img, the way sbsign does: pad the file to 8 bytes, hash, append one
// WIN_CERTIFICATE, point the certificate directory at it.
func sign(t testing.TB, img []byte, signer *testKey, chain ...*testKey) []byte {
	t.Helper()
	img = append([]byte(nil), img...)
	img = append(img, make([]byte, alignUp(len(img), 8)-len(img))...)
	im, err := Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if im.certSize != 0 {
		t.Fatal("sign: image already signed")
	}
	digest, err := im.Digest(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	der := authenticode(t, digest, signer, chain...)
	entry := make([]byte, 8, 8+len(der)+8)
	binary.LittleEndian.PutUint32(entry, uint32(8+len(der)))
	binary.LittleEndian.PutUint16(entry[4:], winCertRevision2)
	binary.LittleEndian.PutUint16(entry[6:], winCertTypePKCS7)
	entry = append(entry, der...)
	entry = append(entry, make([]byte, alignUp(len(entry), 8)-len(entry))...)
	binary.LittleEndian.PutUint32(img[im.certDirOff:], uint32(len(img)))
	binary.LittleEndian.PutUint32(img[im.certDirOff+4:], uint32(len(entry)))
	return append(img, entry...)
}

// authenticode builds the PKCS#7 SignedData of an Authenticode signature over digest.
func authenticode(t testing.TB, digest []byte, signer *testKey, chain ...*testKey) []byte {
	t.Helper()
	type algID struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue
	}
	peImageData, _ := asn1.Marshal(struct{ Flags asn1.BitString }{})
	data, err := asn1.Marshal(struct {
		Type  asn1.ObjectIdentifier
		Value asn1.RawValue
	}{oidSpcPEImageData, asn1.RawValue{FullBytes: peImageData}})
	if err != nil {
		t.Fatal(err)
	}
	di, err := asn1.Marshal(struct {
		Algorithm algID
		Digest    []byte
	}{algID{oidSHA256, asn1.NullRawValue}, digest})
	if err != nil {
		t.Fatal(err)
	}
	inner := append(data, di...)
	full, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: inner})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := pkcs7.NewSignedData(inner)
	if err != nil {
		t.Fatal(err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	// Authenticode's content is SpcIndirectDataContent itself, not an OCTET STRING of Data;
	// the messageDigest attribute covers the SEQUENCE's inside, which NewSignedData hashed.
	raw := sd.GetSignedData()
	raw.ContentInfo.ContentType = oidSpcIndirectDataContent
	raw.ContentInfo.Content = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: full}
	if err := sd.AddSigner(signer.cert, signer.key, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	// Added as plain certificates, so a chain the pkcs7 module would refuse to build (a
	// non-CA issuer) can still be carried, as a hostile image might.
	for _, c := range chain {
		sd.AddCertificate(c.cert)
	}
	out, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// vendorCertSection builds a shim .vendor_cert section: the cert_table header, then the
// authorized part (one DER certificate or a signature list) and the deauthorized part.
func vendorCertSection(auth, deauth []byte) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], uint32(len(auth)))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(deauth)))
	binary.LittleEndian.PutUint32(b[8:], 16)
	binary.LittleEndian.PutUint32(b[12:], uint32(16+len(auth)))
	return append(append(b, auth...), deauth...)
}

// signatureList builds one EFI_SIGNATURE_LIST of entries of the given type.
func signatureList(typ [16]byte, entries ...[]byte) []byte {
	size := 16 + len(entries[0])
	b := make([]byte, 28)
	copy(b, typ[:])
	binary.LittleEndian.PutUint32(b[16:], uint32(28+size*len(entries)))
	binary.LittleEndian.PutUint32(b[24:], uint32(size))
	for _, e := range entries {
		b = append(b, make([]byte, 16)...) // owner GUID
		b = append(b, e...)
	}
	return b
}

// shimImage builds a PE that ParseShim reads like a shim.
func shimImage(auth, deauth []byte) []byte {
	return buildPE(
		testSection{".text", []byte("shim code")},
		testSection{".vendor_cert", vendorCertSection(auth, deauth)},
		testSection{".sbat", append([]byte("sbat,1,SBAT Version,sbat,1,https://example.invalid/SBAT.md\nshim,4,UEFI shim,shim,1,https://example.invalid\n"), 0, 0, 0)},
	)
}

func parseBytes(t testing.TB, b []byte) *Image {
	t.Helper()
	im, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// Debian's signed binaries, from installed packages.
const (
	debianShim   = "/usr/lib/shim/shimx64.efi.signed"                                            // shim-signed
	debianGRUB   = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"                       // grub-efi-amd64-signed
	debianKernel = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux" // debian-installer-12-netboot-amd64
	debianARM64  = "/usr/lib/debian-installer/images/12/arm64/text/debian-installer/arm64/linux" // debian-installer-12-netboot-arm64
)

// debianFile reads an installed Debian file, skipping the test only when its package is not
// installed (scripts/deps.sh installs them for CI).
func debianFile(t testing.TB, path, pkg string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("%s not installed (package %s; scripts/deps.sh installs it)", path, pkg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func debianShimParsed(t testing.TB) *Shim {
	t.Helper()
	s, err := ParseShim(parseBytes(t, debianFile(t, debianShim, "shim-signed")))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
