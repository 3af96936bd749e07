// Package sign loads signing keys and certificates and makes and checks the
// CMS signatures that Rugix Ctrl verifies on update bundles.
//
// A Rugix bundle signature is a DER CMS SignedData with the 90-byte
// SignedMetadata attached (what `openssl cms -sign -nodetach -binary` makes).
// Devices on Rugix Ctrl 0.8.14+ check it with the openssl tool, devices on
// 1.x with a native verifier; this package signs so that both accept it and
// verifies with the stricter 1.x rules, so a bundle that passes here does not
// fail on the device.
package sign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/youmark/pkcs8"

	"github.com/otabake/otabake/internal/ctxio"
)

// Signer holds everything a CMS signature needs: the private key (a local key
// or a KMS handle behind crypto.Signer), the signer certificate that is
// embedded so devices can find the public key, and the intermediates that are
// embedded so devices can build the path to their root.
type Signer struct {
	Key   crypto.Signer
	Cert  *x509.Certificate
	Chain []*x509.Certificate
	// SigningTime is the CMS signingTime attribute; zero means the time of signing. A build
	// sets the release's time, so that signing the same release twice gives the same bytes.
	SigningTime time.Time
}

// LoadSigner loads a signing key and its certificates.
//
// keyRef is either a PEM file (PKCS#8, PKCS#1 or SEC1; encrypted PKCS#8 or
// legacy encrypted PEM with the password taken from the environment variable
// named passwordEnv) or a KMS URI (awskms://, gcpkms://, azurekms://,
// hashivault://). For a KMS key, ctx is kept by the returned Signer and used
// for every signing request, so it must outlive the signing.
//
// certPath holds the signer certificate first; further certificates in it
// and all certificates in chainPaths are embedded as intermediates. The
// certificate must belong to the key: a mismatch would only surface on the
// device.
func LoadSigner(ctx context.Context, keyRef, certPath string, chainPaths []string, passwordEnv string) (*Signer, error) {
	if keyRef == "" {
		return nil, errors.New("load signer: no signing key given")
	}
	if certPath == "" {
		return nil, errors.New("load signer: no signer certificate given (the CMS signature embeds it so devices can verify)")
	}
	certs, err := loadCertificates(certPath)
	if err != nil {
		return nil, fmt.Errorf("load signer certificate: %w", err)
	}
	s := &Signer{Cert: certs[0], Chain: certs[1:]}
	for _, p := range chainPaths {
		chain, err := loadCertificates(p)
		if err != nil {
			return nil, fmt.Errorf("load intermediate certificates: %w", err)
		}
		s.Chain = append(s.Chain, chain...)
	}

	if isKMSRef(keyRef) {
		s.Key, err = loadKMSKey(ctx, keyRef)
	} else {
		s.Key, err = loadPEMKey(keyRef, passwordEnv)
	}
	if err != nil {
		return nil, err
	}
	pub := s.Key.Public()
	if pub == nil {
		return nil, fmt.Errorf("load signer: key %s has no public key", keyRef)
	}
	if err := checkKeyType(pub); err != nil {
		return nil, fmt.Errorf("key %s: %w", keyRef, err)
	}
	if !publicKeysEqual(s.Cert.PublicKey, pub) {
		return nil, fmt.Errorf("certificate %s (subject %q) does not belong to key %s: their public keys differ",
			certPath, s.Cert.Subject.String(), keyRef)
	}
	return s, nil
}

// uriScheme matches a URI scheme prefix; anything else is a file path.
var uriScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

func isKMSRef(ref string) bool { return uriScheme.MatchString(ref) }

// loadPEMKey reads the first private key block of a PEM file.
func loadPEMKey(path, passwordEnv string) (crypto.Signer, error) {
	data, err := ctxio.ReadFile(path, maxCertFileSize)
	if err != nil {
		return nil, fmt.Errorf("load signing key: %w", err)
	}
	var block *pem.Block
	var seen []string
	for rest := data; ; {
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			break
		}
		seen = append(seen, block.Type)
	}
	if block == nil {
		if len(seen) == 0 {
			return nil, fmt.Errorf("signing key %s: no PEM block found", path)
		}
		return nil, fmt.Errorf("signing key %s: no PRIVATE KEY PEM block found (found %s)", path, strings.Join(seen, ", "))
	}

	der := block.Bytes
	//nolint:staticcheck // legacy "Proc-Type: 4,ENCRYPTED" keys are what `openssl rsa -aes256` still writes.
	legacyEncrypted := x509.IsEncryptedPEMBlock(block)
	if block.Type == "ENCRYPTED PRIVATE KEY" || legacyEncrypted {
		password, err := keyPassword(path, passwordEnv)
		if err != nil {
			return nil, err
		}
		if legacyEncrypted {
			//nolint:staticcheck // see above
			der, err = x509.DecryptPEMBlock(block, password)
			if err != nil {
				return nil, wrongPassword(path, passwordEnv, err)
			}
		} else {
			key, err := pkcs8.ParsePKCS8PrivateKey(der, password)
			if err != nil {
				return nil, wrongPassword(path, passwordEnv, err)
			}
			return asSigner(path, key)
		}
	}

	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(der)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(der)
	default:
		return nil, fmt.Errorf("signing key %s: unsupported PEM block type %q (want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", path, block.Type)
	}
	if err != nil {
		if legacyEncrypted {
			// Legacy PEM encryption has no integrity check: a wrong
			// password usually shows up only as garbage key bytes.
			return nil, wrongPassword(path, passwordEnv, err)
		}
		return nil, fmt.Errorf("signing key %s: parse %s: %w", path, block.Type, err)
	}
	return asSigner(path, key)
}

// keyPassword fetches the password for an encrypted key from the
// environment. The value itself never appears in an error.
func keyPassword(path, passwordEnv string) ([]byte, error) {
	if passwordEnv == "" {
		return nil, fmt.Errorf("signing key %s is encrypted: name the environment variable that holds its password", path)
	}
	pw, ok := os.LookupEnv(passwordEnv)
	if !ok {
		return nil, fmt.Errorf("signing key %s is encrypted, but environment variable %s (its password) is not set", path, passwordEnv)
	}
	if pw == "" {
		return nil, fmt.Errorf("signing key %s is encrypted, but environment variable %s (its password) is empty", path, passwordEnv)
	}
	return []byte(pw), nil
}

// ErrWrongPassword is returned (wrapped) when an encrypted key cannot be
// decrypted with the password from the environment, so callers can tell a
// typo in the secret from a broken key file.
var ErrWrongPassword = errors.New("wrong password")

func wrongPassword(path, passwordEnv string, cause error) error {
	return fmt.Errorf("signing key %s: decrypt with the password from $%s: %w or corrupt key (%v)", path, passwordEnv, ErrWrongPassword, cause)
}

func asSigner(path string, key any) (crypto.Signer, error) {
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s: key type %T cannot sign", path, key)
	}
	return s, nil
}

// checkKeyType accepts the key types both Rugix Ctrl 0.8 (OpenSSL) and 1.x
// (webpki with aws-lc-rs) verify and our CMS encoder can produce, so an
// unusable key is reported at load time, not on the device.
func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 8192 {
			return fmt.Errorf("RSA key has %d bits; Rugix Ctrl 1.x accepts 2048 to 8192", bits)
		}
		return nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s is not accepted by Rugix Ctrl 1.x (use P-256 or P-384)", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return errors.New("Ed25519 keys are not supported for CMS signing here (use ECDSA P-256 or RSA)")
	default:
		return fmt.Errorf("unsupported key type %T (use ECDSA P-256/P-384 or RSA)", pub)
	}
}

// digestFor picks the CMS digest for a key: SHA-256 as OpenSSL does, except
// for P-384, where Rugix Ctrl 1.x insists on ecdsa-with-SHA384.
func digestFor(pub crypto.PublicKey) crypto.Hash {
	if k, ok := pub.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P384() {
		return crypto.SHA384
	}
	return crypto.SHA256
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}
