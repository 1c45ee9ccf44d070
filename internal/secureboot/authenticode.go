package secureboot

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // Authenticode digests of old images
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/smallstep/pkcs7"
)

// Authenticode object identifiers (Microsoft's "Windows Authenticode Portable Executable
// Signature Format").
var (
	oidSpcIndirectDataContent = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcPEImageData         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
)

// WIN_CERTIFICATE values (winnt.h).
const (
	winCertRevision2    = 0x0200
	winCertTypePKCS7    = 0x0002
	maxSignatures       = 16
	winCertHeaderLength = 8
)

// Signature is one Authenticode signature found in an image's certificate table.
type Signature struct {
	// Signer is the certificate the SignerInfo names (by issuer and serial) among the
	// certificates the signature carries; nil when it carries none that matches.
	Signer *x509.Certificate
	// Certificates are all the certificates the signature carries (signer and
	// intermediates).
	Certificates []*x509.Certificate
	// DigestAlgorithm and Digest are the image digest the signature vouches for
	// (SpcIndirectDataContent's DigestInfo).
	DigestAlgorithm crypto.Hash
	Digest          []byte
	// Err says why the signature does not hold by itself: its PKCS#7 signature does not
	// verify against Signer, or the signed attributes do not bind the content. nil when it
	// holds; whether it is trusted is a separate question (Shim.Verify).
	Err error
}

// Signatures parses the image's certificate table: every WIN_CERTIFICATE of type
// PKCS_SIGNED_DATA, as Authenticode. An unsigned image has none. An entry that does not
// parse is an error: a firmware or shim would refuse the image.
func (im *Image) Signatures() ([]*Signature, error) {
	if im.certSize == 0 {
		return nil, nil
	}
	table := make([]byte, im.certSize)
	if _, err := im.r.ReadAt(table, im.certOff); err != nil {
		return nil, fmt.Errorf("read certificate table: %w", err)
	}
	var sigs []*Signature
	for len(table) >= winCertHeaderLength {
		n := int64(binary.LittleEndian.Uint32(table))
		rev := binary.LittleEndian.Uint16(table[4:])
		typ := binary.LittleEndian.Uint16(table[6:])
		if n < winCertHeaderLength || n > int64(len(table)) {
			return sigs, fmt.Errorf("WIN_CERTIFICATE length %d in a %d-byte table", n, len(table))
		}
		if len(sigs) >= maxSignatures {
			return sigs, fmt.Errorf("more than %d signatures", maxSignatures)
		}
		if rev != winCertRevision2 || typ != winCertTypePKCS7 {
			return sigs, fmt.Errorf("WIN_CERTIFICATE revision %#x type %#x, want PKCS#7 signed data", rev, typ)
		}
		sig, err := parseSignature(table[winCertHeaderLength:n])
		if err != nil {
			return sigs, err
		}
		sigs = append(sigs, sig)
		// Entries are 8-byte aligned.
		next := (n + 7) &^ 7
		if next >= int64(len(table)) {
			break
		}
		table = table[next:]
	}
	return sigs, nil
}

// parseSignature parses one Authenticode PKCS#7 blob and checks it by itself: the signed
// attributes' message digest must be the content's and the signature over them must verify
// with the signer's key (both done by the pkcs7 module).
func parseSignature(der []byte) (sig *Signature, err error) {
	// The blob is padded to 8 bytes; the PKCS#7 parser refuses trailing data, so cut it to
	// the outer element when that is DER (BER with indefinite lengths goes in whole).
	var outer asn1.RawValue
	if _, e := asn1.Unmarshal(der, &outer); e == nil {
		der = outer.FullBytes
	}
	// The pkcs7 module is a third-party parser of hostile input: turn a panic into an error.
	defer func() {
		if r := recover(); r != nil {
			sig, err = nil, fmt.Errorf("parse PKCS#7 signature: parser panic: %v", r)
		}
	}()
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#7 signature: %w", err)
	}
	if len(p7.Signers) != 1 {
		return nil, fmt.Errorf("Authenticode signature with %d signers, want 1", len(p7.Signers))
	}
	sig = &Signature{Certificates: p7.Certificates}
	ias := p7.Signers[0].IssuerAndSerialNumber
	for _, c := range p7.Certificates {
		if c.SerialNumber != nil && ias.SerialNumber != nil && c.SerialNumber.Cmp(ias.SerialNumber) == 0 &&
			bytes.Equal(c.RawIssuer, ias.IssuerName.FullBytes) {
			sig.Signer = c
			break
		}
	}
	sig.DigestAlgorithm, sig.Digest, err = spcDigest(p7.Content)
	if err != nil {
		return nil, err
	}
	if sig.Signer == nil {
		sig.Err = errors.New("the signature carries no certificate for its signer")
	} else if err := p7.Verify(); err != nil {
		sig.Err = err
	}
	return sig, nil
}

// spcDigest reads the image digest out of SpcIndirectDataContent. The PKCS#7 content is the
// SEQUENCE's inside (what Authenticode's message digest covers):
//
//	SpcIndirectDataContent ::= SEQUENCE {
//	    data          SpcAttributeTypeAndOptionalValue,  -- SEQUENCE { type OID, value ANY }
//	    messageDigest DigestInfo }                       -- SEQUENCE { AlgorithmIdentifier, OCTET STRING }
func spcDigest(content []byte) (crypto.Hash, []byte, error) {
	var data struct {
		Type  asn1.ObjectIdentifier
		Value asn1.RawValue `asn1:"optional"`
	}
	rest, err := asn1.Unmarshal(content, &data)
	if err != nil {
		return 0, nil, fmt.Errorf("not Authenticode: SpcIndirectDataContent: %w", err)
	}
	if !data.Type.Equal(oidSpcPEImageData) {
		return 0, nil, fmt.Errorf("not Authenticode: content type %v, want SpcPEImageData", data.Type)
	}
	var di struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}
	if _, err := asn1.Unmarshal(rest, &di); err != nil {
		return 0, nil, fmt.Errorf("not Authenticode: DigestInfo: %w", err)
	}
	h, ok := digestAlgorithms[di.Algorithm.Algorithm.String()]
	if !ok {
		return 0, nil, fmt.Errorf("Authenticode digest algorithm %v not supported", di.Algorithm.Algorithm)
	}
	if len(di.Digest) != h.Size() {
		return 0, nil, fmt.Errorf("Authenticode %v digest of %d bytes", h, len(di.Digest))
	}
	return h, di.Digest, nil
}

var digestAlgorithms = map[string]crypto.Hash{
	"1.3.14.3.2.26":          crypto.SHA1,
	"2.16.840.1.101.3.4.2.1": crypto.SHA256,
	"2.16.840.1.101.3.4.2.2": crypto.SHA384,
	"2.16.840.1.101.3.4.2.3": crypto.SHA512,
}

// Digest computes the image's Authenticode digest with h, in one streaming pass.
func (im *Image) Digest(h crypto.Hash) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("hash %v not available", h)
	}
	ranges, err := im.hashRanges()
	if err != nil {
		return nil, err
	}
	w := h.New()
	for _, r := range ranges {
		if _, err := io.Copy(w, io.NewSectionReader(im.r, r[0], r[1]-r[0])); err != nil {
			return nil, fmt.Errorf("read image bytes %d–%d: %w", r[0], r[1], err)
		}
	}
	return w.Sum(nil), nil
}
