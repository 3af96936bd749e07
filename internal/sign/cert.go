package sign

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/otabake/otabake/internal/ctxio"
)

// maxCertFileSize bounds what we read from a certificate or key file: real
// PEM bundles are a few KiB, and a wrong path (a disk image, /dev/zero) must
// not exhaust memory.
const maxCertFileSize = 4 << 20

// ParseCertificates parses every certificate in pemOrDER. PEM input may hold
// several CERTIFICATE blocks (a leaf followed by its chain, as most CAs ship
// them); other PEM blocks such as keys are skipped. Input without a PEM block
// is taken as one or more concatenated DER certificates. It is an error if no
// certificate is found, so callers never proceed with an empty trust set.
func ParseCertificates(pemOrDER []byte) ([]*x509.Certificate, error) {
	trimmed := bytes.TrimSpace(pemOrDER)
	if len(trimmed) == 0 {
		return nil, errors.New("no certificate found: input is empty")
	}
	if !bytes.Contains(trimmed, []byte("-----BEGIN")) {
		certs, err := x509.ParseCertificates(pemOrDER)
		if err != nil {
			return nil, fmt.Errorf("parse DER certificate: %w", err)
		}
		if len(certs) == 0 {
			return nil, errors.New("no certificate found in DER input")
		}
		return certs, nil
	}
	var certs []*x509.Certificate
	rest := pemOrDER
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PEM block %d (CERTIFICATE): %w", n, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE block found in PEM input")
	}
	return certs, nil
}

// LoadCertPool builds a trust pool from the certificates in the given PEM or
// DER files. Every file must contain at least one certificate: a silently
// empty root file would otherwise turn into "untrusted root" errors far from
// the real mistake.
func LoadCertPool(paths ...string) (*x509.CertPool, error) {
	if len(paths) == 0 {
		return nil, errors.New("load certificate pool: no root certificate file given")
	}
	pool := x509.NewCertPool()
	for _, p := range paths {
		certs, err := loadCertificates(p)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

// loadCertificates reads and parses one certificate file.
func loadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := ctxio.ReadFile(path, maxCertFileSize)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("certificate file %s: %w", path, err)
	}
	return certs, nil
}
