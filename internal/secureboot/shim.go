package secureboot

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ErrNotShim is returned (wrapped) by ParseShim for an image without a .vendor_cert section.
var ErrNotShim = errors.New("not a shim (no .vendor_cert section)")

// Shim is what a shim binary trusts on its own, read from its .vendor_cert section. A shim
// also trusts the firmware's db and the machine's MOK list (certificates an operator
// enrolled with mokutil); fleetboot cannot see those, so its verdicts answer "does this shim
// trust it out of the box".
type Shim struct {
	// Certs are the vendor certificates: the one built in with VENDOR_CERT_FILE (Debian,
	// Ubuntu, Fedora …) or the X.509 entries of a vendor_db (VENDOR_DB_FILE).
	Certs []*x509.Certificate
	// Hashes are SHA-256 image digests a vendor_db allows.
	Hashes [][]byte
	// DeniedCerts and DeniedHashes come from vendor_dbx (vendor_deauthorized): signers and
	// images this shim refuses even when a trusted certificate signed them.
	DeniedCerts  []*x509.Certificate
	DeniedHashes [][]byte
	// SBAT is the shim's own .sbat section (CSV), "" when it has none.
	SBAT string
}

// EFI_SIGNATURE_LIST types (UEFI spec, "Signature Database"), in their on-disk byte order
// (the first three GUID fields are little-endian).
var (
	efiCertX509   = guid(0xa5c059a1, 0x94e4, 0x4aa7, [8]byte{0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72})
	efiCertSHA256 = guid(0xc1c41626, 0x504c, 0x4092, [8]byte{0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28})
)

func guid(a uint32, b, c uint16, d [8]byte) [16]byte {
	var g [16]byte
	binary.LittleEndian.PutUint32(g[0:], a)
	binary.LittleEndian.PutUint16(g[4:], b)
	binary.LittleEndian.PutUint16(g[6:], c)
	copy(g[8:], d[:])
	return g
}

// ParseShim reads the trust anchors out of a shim image. The .vendor_cert section starts
// with shim's cert_table (shim.c, four little-endian uint32):
//
//	vendor_authorized_size, vendor_deauthorized_size,
//	vendor_authorized_offset, vendor_deauthorized_offset   -- offsets from the table's start
//
// vendor_authorized is one DER certificate (shim built with VENDOR_CERT_FILE) or an
// EFI_SIGNATURE_LIST database (VENDOR_DB_FILE); which one is a build-time choice, so it is
// told apart here by content. vendor_deauthorized is always a signature list (vendor_dbx).
func ParseShim(im *Image) (*Shim, error) {
	sec, ok, err := im.Section(".vendor_cert")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotShim
	}
	if len(sec) < 16 {
		return nil, fmt.Errorf(".vendor_cert: %d bytes, shorter than its table", len(sec))
	}
	part := func(sizeAt, offAt int) ([]byte, error) {
		size := int64(binary.LittleEndian.Uint32(sec[sizeAt:]))
		off := int64(binary.LittleEndian.Uint32(sec[offAt:]))
		if size == 0 {
			return nil, nil
		}
		if off < 16 || off+size > int64(len(sec)) {
			return nil, fmt.Errorf(".vendor_cert: %d bytes at %d outside the %d-byte section", size, off, len(sec))
		}
		return sec[off : off+size], nil
	}
	auth, err := part(0, 8)
	if err != nil {
		return nil, err
	}
	deauth, err := part(4, 12)
	if err != nil {
		return nil, err
	}
	s := &Shim{}
	if len(auth) > 0 {
		if c, err := x509.ParseCertificate(auth); err == nil {
			s.Certs = []*x509.Certificate{c}
		} else if s.Certs, s.Hashes, err = parseSignatureLists(auth); err != nil {
			return nil, fmt.Errorf("vendor certificate: neither a DER certificate nor a signature list: %w", err)
		}
	}
	if len(deauth) > 0 {
		if s.DeniedCerts, s.DeniedHashes, err = parseSignatureLists(deauth); err != nil {
			return nil, fmt.Errorf("vendor_dbx: %w", err)
		}
	}
	s.SBAT, err = sbat(im)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// parseSignatureLists reads a sequence of EFI_SIGNATURE_LISTs, keeping X.509 certificates
// and SHA-256 hashes (other types, e.g. SHA-1 or certificate hashes, are skipped as shim
// skips what it does not match against).
//
//	EFI_SIGNATURE_LIST { GUID SignatureType; UINT32 SignatureListSize, SignatureHeaderSize,
//	                     SignatureSize; header[SignatureHeaderSize];
//	                     EFI_SIGNATURE_DATA { GUID Owner; data[SignatureSize-16] } … }
func parseSignatureLists(b []byte) (certs []*x509.Certificate, hashes [][]byte, err error) {
	for len(b) > 0 {
		if len(b) < 28 {
			return nil, nil, fmt.Errorf("signature list: %d stray bytes", len(b))
		}
		var typ [16]byte
		copy(typ[:], b)
		listSize := int64(binary.LittleEndian.Uint32(b[16:]))
		hdrSize := int64(binary.LittleEndian.Uint32(b[20:]))
		sigSize := int64(binary.LittleEndian.Uint32(b[24:]))
		if listSize < 28 || listSize > int64(len(b)) || hdrSize > listSize-28 || sigSize < 16 {
			return nil, nil, fmt.Errorf("signature list: sizes %d/%d/%d in %d bytes", listSize, hdrSize, sigSize, len(b))
		}
		body := b[28+hdrSize : listSize]
		if int64(len(body))%sigSize != 0 {
			return nil, nil, fmt.Errorf("signature list: %d bytes of %d-byte entries", len(body), sigSize)
		}
		for ; len(body) > 0; body = body[sigSize:] {
			data := body[16:sigSize]
			switch typ {
			case efiCertX509:
				c, err := x509.ParseCertificate(data)
				if err != nil {
					return nil, nil, fmt.Errorf("signature list certificate: %w", err)
				}
				certs = append(certs, c)
			case efiCertSHA256:
				if len(data) == 32 {
					hashes = append(hashes, data)
				}
			}
		}
		b = b[listSize:]
	}
	return certs, hashes, nil
}

// sbat returns the image's .sbat section as text, without the NUL padding.
func sbat(im *Image) (string, error) {
	b, ok, err := im.Section(".sbat")
	if err != nil || !ok {
		return "", err
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b)), nil
}

// Verdict is whether a shim lets an image run.
type Verdict struct {
	// Trusted: some signature of the image has a matching digest and chains to (or is) one of
	// the shim's vendor certificates, or the image's digest is in its vendor_db.
	Trusted bool `json:"trusted"`
	// By names what made it trusted: the vendor certificate's subject, or "vendor_db hash".
	By string `json:"by,omitempty"`
	// Reason says why not, when not trusted.
	Reason string `json:"reason,omitempty"`
}

// Verify decides whether shim s lets image im run, the way shim's verify_buffer does once
// the firmware's db and the MOK list are left out (fleetboot cannot see them):
//   - the image digest in the signature must equal the image's SHA-256 Authenticode digest
//     (shim verifies SHA-256 signatures only);
//   - the PKCS#7 signature must verify, and its signer must be a vendor certificate or chain
//     to one. shim uses OpenSSL with the vendor certificate as the only trusted root and the
//     flags X509_V_FLAG_PARTIAL_CHAIN (the root need not be self-signed, so a leaf signing
//     certificate can be trusted directly) and X509_V_FLAG_NO_CHECK_TIME (firmware has no
//     trusted clock: expired certificates still count), and no extended-key-usage check
//     (purpose "any"; Debian's and Microsoft's signing certificates carry only Code Signing
//     or vendor-specific usages). The same rules are applied here, by hand, because Go's
//     x509.Verify always checks validity periods.
//   - vendor_dbx (and a digest listed there) overrides everything.
func (s *Shim) Verify(im *Image) Verdict {
	sigs, err := im.Signatures()
	if err != nil {
		return Verdict{Reason: "signature unreadable: " + err.Error()}
	}
	sha256Digest, err := im.Digest(crypto.SHA256)
	if err != nil {
		return Verdict{Reason: "image unreadable: " + err.Error()}
	}
	for _, h := range s.DeniedHashes {
		if bytes.Equal(h, sha256Digest) {
			return Verdict{Reason: "the image's digest is in this shim's vendor_dbx (revoked)"}
		}
	}
	for _, h := range s.Hashes {
		if bytes.Equal(h, sha256Digest) {
			return Verdict{Trusted: true, By: "vendor_db hash"}
		}
	}
	if len(sigs) == 0 {
		return Verdict{Reason: "not signed"}
	}
	reason := ""
	for _, sig := range sigs {
		r := s.verifySignature(sig, sha256Digest)
		if r == "" {
			return Verdict{Trusted: true, By: s.anchor(sig)}
		}
		if reason == "" {
			reason = r
		}
	}
	return Verdict{Reason: reason}
}

// verifySignature returns "" when sig makes the image trusted, else the reason it does not.
func (s *Shim) verifySignature(sig *Signature, sha256Digest []byte) string {
	switch {
	case sig.DigestAlgorithm != crypto.SHA256:
		return fmt.Sprintf("signed with a %v digest; shim checks SHA-256 only", sig.DigestAlgorithm)
	case !bytes.Equal(sig.Digest, sha256Digest):
		return "the signature does not match the image (modified after signing)"
	case sig.Err != nil:
		return "invalid signature: " + sig.Err.Error()
	}
	chain := chainTo(sig.Signer, sig.Certificates, s.Certs)
	if chain == nil {
		return fmt.Sprintf("signed by %q (issuer %q), which does not chain to this shim's vendor certificate%s",
			sig.Signer.Subject.String(), sig.Signer.Issuer.String(), plural(len(s.Certs)))
	}
	for _, c := range chain {
		for _, d := range s.DeniedCerts {
			if bytes.Equal(c.Raw, d.Raw) {
				return fmt.Sprintf("certificate %q is in this shim's vendor_dbx (revoked)", c.Subject.String())
			}
		}
	}
	return ""
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return fmt.Sprintf("s (%d)", n)
}

// anchor names the vendor certificate sig chains to.
func (s *Shim) anchor(sig *Signature) string {
	if chain := chainTo(sig.Signer, sig.Certificates, s.Certs); len(chain) > 0 {
		return chain[len(chain)-1].Subject.String()
	}
	return ""
}

// maxChain bounds chain building: Authenticode chains are two or three certificates long.
const maxChain = 8

// chainTo builds a chain from leaf through the signature's own certificates to one of
// anchors, checking each link's signature, and returns it ending with the anchor; nil when
// there is none. Validity periods and extended key usages are not checked (see
// Shim.Verify); a certificate that issues another must be allowed to (CA basic constraint
// when it has basic constraints, certificate-sign key usage when it has key usages), as
// OpenSSL requires.
func chainTo(leaf *x509.Certificate, pool, anchors []*x509.Certificate) []*x509.Certificate {
	if leaf == nil {
		return nil
	}
	chain := []*x509.Certificate{leaf}
	cur := leaf
	for depth := 0; depth < maxChain; depth++ {
		for _, a := range anchors {
			if bytes.Equal(cur.Raw, a.Raw) {
				return chain
			}
		}
		for _, a := range anchors {
			if issued(a, cur) {
				return append(chain, a)
			}
		}
		var next *x509.Certificate
		for _, c := range pool {
			if !bytes.Equal(c.Raw, cur.Raw) && issued(c, cur) && !contains(chain, c) {
				next = c
				break
			}
		}
		if next == nil {
			return nil
		}
		chain = append(chain, next)
		cur = next
	}
	return nil
}

// issued reports whether parent signed child and may issue certificates.
func issued(parent, child *x509.Certificate) bool {
	if !bytes.Equal(parent.RawSubject, child.RawIssuer) {
		return false
	}
	if parent.BasicConstraintsValid && !parent.IsCA {
		return false
	}
	if parent.KeyUsage != 0 && parent.KeyUsage&x509.KeyUsageCertSign == 0 {
		return false
	}
	return parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature) == nil
}

func contains(chain []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range chain {
		if bytes.Equal(x.Raw, c.Raw) {
			return true
		}
	}
	return false
}
