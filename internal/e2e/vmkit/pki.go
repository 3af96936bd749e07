//go:build linux

package vmkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// TestCA is a throw-away code-signing PKI made at test time: a self-signed root and one signer
// it issued, ECDSA P-256 as Rugix's signed-updates documentation shows. Never for production.
type TestCA struct {
	// Root is the root certificate (PEM), the file a device trusts.
	Root string
	// Key and Cert are the signer's private key (PKCS#8 PEM) and certificate (PEM), as
	// [systems.X.signing] key and cert take them.
	Key, Cert string
}

// WriteTestCA writes name-ca.crt, name-signer.key and name-signer.crt into dir.
func WriteTestCA(dir, name string) (*TestCA, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " test CA (otabake e2e, development only)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("test CA %s: %w", name, err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: name + " test signer (otabake e2e, development only)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("test signer %s: %w", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	t := &TestCA{
		Root: filepath.Join(dir, name+"-ca.crt"),
		Key:  filepath.Join(dir, name+"-signer.key"),
		Cert: filepath.Join(dir, name+"-signer.crt"),
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{t.Root, "CERTIFICATE", caDER, 0o644},
		{t.Key, "PRIVATE KEY", keyDER, 0o600},
		{t.Cert, "CERTIFICATE", leafDER, 0o644},
	} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return nil, err
		}
	}
	return t, nil
}
