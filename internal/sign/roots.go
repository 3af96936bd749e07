package sign

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// LoadCertificates reads every certificate in the given PEM or DER files, in order.
func LoadCertificates(paths ...string) ([]*x509.Certificate, error) {
	var all []*x509.Certificate
	for _, p := range paths {
		certs, err := loadCertificates(p)
		if err != nil {
			return nil, err
		}
		all = append(all, certs...)
	}
	return all, nil
}

// SelfSigned reports whether c is a self-signed certificate: its issuer is its subject and
// its own key verifies its signature.
func SelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// ChainRoot returns the root of a self-contained chain: the last of certs when it is
// self-signed. A chain whose root is not included gives ok = false.
func ChainRoot(certs []*x509.Certificate) (root *x509.Certificate, ok bool) {
	if len(certs) == 0 {
		return nil, false
	}
	last := certs[len(certs)-1]
	return last, SelfSigned(last)
}

// CheckChainsTo checks, at build time, what a device checks when it installs: that the
// signer certificate, with the embedded intermediates, chains to one of roots at now, and
// that the signer is usable by Rugix Ctrl 1.x (no CA used as end entity, code-signing EKU
// or none). A release whose signature the devices' roots cannot verify is caught here
// instead of on every device.
func (s *Signer) CheckChainsTo(roots []*x509.Certificate, now time.Time) error {
	if len(roots) == 0 {
		return errors.New("no trust roots to check the signer against")
	}
	if err := checkSignerCert(s.Cert); err != nil {
		return err
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	certs := append([]*x509.Certificate{s.Cert}, s.Chain...)
	if err := verifyChain(s.Cert, certs, pool, now); err != nil {
		return fmt.Errorf("signer %q does not chain to the trust roots baked into the image: %w", s.Cert.Subject.String(), err)
	}
	return nil
}
