package sign

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Development key file names, written by DevKeys.Write. "dev-" is in every name so that a
// development key is never mistaken for a production one in a project tree or a CI log.
const (
	DevCACert     = "dev-ca.crt"
	DevCAKey      = "dev-ca.key"
	DevSignerCert = "dev-signer.crt"
	DevSignerKey  = "dev-signer.key"
)

// DevKeyOptions parameterize NewDevKeys.
type DevKeyOptions struct {
	// Now is the start of validity; zero means time.Now().
	Now time.Time
	// CAValidity defaults to 10 years, SignerValidity to 1 year, as Rugix's "Creating a
	// Self-Signed CA" recipe (openssl req -days 3650, openssl x509 -days 365).
	CAValidity, SignerValidity time.Duration
}

// DevKeys is a development PKI: a self-signed CA and a signer certificate it issued, each
// with its key, as PEM files with a "DEVELOPMENT ONLY" preamble.
type DevKeys struct {
	CACert, CAKey, SignerCert, SignerKey []byte
}

const devPreamble = `# DEVELOPMENT ONLY - made by "otabake keys init". Anyone with this repository can sign
# updates that devices trusting this CA install. Never use it for devices in the field:
# create a production CA offline (or use a KMS key) and set [systems.NAME.signing].
`

// NewDevKeys makes a development CA and signer the way Rugix's documentation does (Signed
// Updates Reference, "Creating a Self-Signed CA"): ECDSA P-256 keys, a self-signed root, and
// a signer with basicConstraints CA:FALSE, keyUsage digitalSignature and no extended key
// usage, which both Rugix Ctrl 0.8.x (OpenSSL, smime_sign purpose) and 1.x (webpki) accept.
func NewDevKeys(opts DevKeyOptions) (*DevKeys, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)
	if opts.CAValidity == 0 {
		opts.CAValidity = 10 * 365 * 24 * time.Hour
	}
	if opts.SignerValidity == 0 {
		opts.SignerValidity = 365 * 24 * time.Hour
	}
	if opts.SignerValidity > opts.CAValidity {
		return nil, fmt.Errorf("dev keys: signer validity %s exceeds the CA's %s", opts.SignerValidity, opts.CAValidity)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	signerKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "otabake DEVELOPMENT Update CA (not for production)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(opts.CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          keyID(&caKey.PublicKey),
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("dev keys: CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	signer := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "otabake DEVELOPMENT Update Signer (not for production)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(opts.SignerValidity),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		SubjectKeyId:          keyID(&signerKey.PublicKey),
	}
	signerDER, err := x509.CreateCertificate(rand.Reader, signer, caCert, &signerKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("dev keys: signer certificate: %w", err)
	}
	k := &DevKeys{CACert: pemFile("CERTIFICATE", caDER), SignerCert: pemFile("CERTIFICATE", signerDER)}
	for _, kk := range []struct {
		dst *[]byte
		key *ecdsa.PrivateKey
	}{{&k.CAKey, caKey}, {&k.SignerKey, signerKey}} {
		der, err := x509.MarshalPKCS8PrivateKey(kk.key)
		if err != nil {
			return nil, err
		}
		*kk.dst = pemFile("PRIVATE KEY", der)
	}
	return k, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}

func keyID(pub *ecdsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha1.Sum(der)
	return sum[:]
}

func pemFile(typ string, der []byte) []byte {
	var b bytes.Buffer
	b.WriteString(devPreamble)
	_ = pem.Encode(&b, &pem.Block{Type: typ, Bytes: der})
	return b.Bytes()
}

// ErrKeysExist is returned (wrapped) by Write when a key file is already there.
var ErrKeysExist = errors.New("key files already exist")

// Write puts the four files into dir (created 0700 if missing): certificates 0644, keys
// 0600. It never replaces a file: if any of the four exists, nothing is written. Each file
// appears complete or not at all (written to a temporary file, synced, then hard-linked to
// its name, which fails instead of overwriting).
func (k *DevKeys) Write(dir string) (written []string, err error) {
	files := []struct {
		name string
		data []byte
		perm fs.FileMode
	}{
		{DevCACert, k.CACert, 0o644}, {DevCAKey, k.CAKey, 0o600},
		{DevSignerCert, k.SignerCert, 0o644}, {DevSignerKey, k.SignerKey, 0o600},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%w: %s; keep using them, or move them away to create new ones (devices built with the old CA then refuse bundles signed with the new one)", ErrKeysExist, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := writeNew(p, f.data, f.perm); err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}

func writeNew(path string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrKeysExist, path)
		}
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
