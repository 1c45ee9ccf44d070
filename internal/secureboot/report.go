package secureboot

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"time"
)

// Signer describes a signing certificate for reports.
type Signer struct {
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	// Serial is the certificate's serial number in hex.
	Serial   string    `json:"serial,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
}

func signerOf(c *x509.Certificate) Signer {
	s := Signer{Subject: c.Subject.String(), Issuer: c.Issuer.String(), NotAfter: c.NotAfter.UTC()}
	if c.SerialNumber != nil {
		s.Serial = fmt.Sprintf("%x", c.SerialNumber)
	}
	return s
}

// Report is what fleetboot shows about one EFI binary or kernel: whether it is a PE image at
// all, whether it carries Authenticode signatures, who signed it and whether the signature
// matches the bytes.
type Report struct {
	// PE is false for files that are not PE/COFF images (a kernel built without the EFI stub,
	// an i386 bzImage without it …): Secure Boot firmware and shim cannot load them at all.
	PE bool `json:"pe"`
	// Arch is the image's machine ("x86_64", "arm64" …), when PE.
	Arch string `json:"arch,omitempty"`
	// Signed is true when the image carries at least one Authenticode signature.
	Signed  bool     `json:"signed"`
	Signers []Signer `json:"signers,omitempty"`
	// DigestMatches is true when a signature's image digest equals the image's own
	// Authenticode digest and the signature verifies with its signer's key: the bytes are
	// what was signed.
	DigestMatches bool `json:"digest_matches,omitempty"`
	// SBAT is the image's .sbat section (shim and GRUB carry one; shim refuses to load a
	// GRUB whose SBAT generation is revoked).
	SBAT string `json:"sbat,omitempty"`
	// Problem says what is wrong with the image or its signature, "" when nothing is.
	Problem string `json:"problem,omitempty"`
}

// Inspect reports on the image r of size bytes. It never fails: what it could not read is
// in Report.Problem.
func Inspect(r io.ReaderAt, size int64) Report {
	im, err := Parse(r, size)
	if err != nil {
		return Report{Problem: err.Error()}
	}
	return im.Report()
}

// Report describes the image's signatures (see Report).
func (im *Image) Report() Report {
	rep := Report{PE: true, Arch: im.Arch()}
	rep.SBAT, _ = sbat(im)
	sigs, err := im.Signatures()
	if err != nil {
		rep.Signed = len(sigs) > 0 || im.certSize > 0
		rep.Problem = "signature unreadable: " + err.Error()
	}
	digests := map[string][]byte{}
	for _, sig := range sigs {
		rep.Signed = true
		if sig.Signer != nil {
			rep.Signers = append(rep.Signers, signerOf(sig.Signer))
		}
		key := sig.DigestAlgorithm.String()
		d, ok := digests[key]
		if !ok {
			d, err = im.Digest(sig.DigestAlgorithm)
			if err != nil {
				rep.Problem = "image unreadable: " + err.Error()
				return rep
			}
			digests[key] = d
		}
		switch {
		case !bytes.Equal(d, sig.Digest):
			if rep.Problem == "" {
				rep.Problem = "the signature does not match the image (modified after signing)"
			}
		case sig.Err != nil:
			if rep.Problem == "" {
				rep.Problem = "invalid signature: " + sig.Err.Error()
			}
		default:
			rep.DigestMatches = true
		}
	}
	if rep.DigestMatches {
		rep.Problem = ""
	}
	return rep
}
