package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature/kms/fake"
)

// signedMetadata is the 90-byte SignedMetadata of a bundle (rugix-bundle.md
// §4.1), the content real signatures carry.
var signedMetadata = func() []byte {
	var b bytes.Buffer
	b.Write([]byte{0x61, 0xd0, 0x87, 0x1e, 0x40, 0x1f, 0x99, 0x2d, 0xfc, 0xcb})
	b.WriteString("sha512-256:" + strings.Repeat("ab", 32))
	b.Write([]byte{0x61, 0xd0, 0x87, 0x1e, 0x00})
	return b.Bytes()
}()

func TestSignedMetadataSize(t *testing.T) {
	if len(signedMetadata) != 90 {
		t.Fatalf("test vector is %d bytes, want 90", len(signedMetadata))
	}
}

func mustLoadSigner(t *testing.T, p pki, leaf string, chain ...string) *Signer {
	t.Helper()
	var chainPaths []string
	for _, c := range chain {
		chainPaths = append(chainPaths, p.path(c+".pem"))
	}
	s, err := LoadSigner(context.Background(), p.path(leaf+".key"), p.path(leaf+".pem"), chainPaths, "")
	if err != nil {
		t.Fatalf("LoadSigner(%s): %v", leaf, err)
	}
	return s
}

// TestSignCMSOpenSSLVerifies checks our signatures with the exact command
// Rugix Ctrl 0.8.14+ runs on the device, and with our own verifier.
func TestSignCMSOpenSSLVerifies(t *testing.T) {
	p := testPKI(t)
	tests := []struct {
		leaf string
		// openSSLPurposeOK: OpenSSL's default smime_sign purpose rejects an
		// EKU without emailProtection (spec §4.3).
		openSSLPurposeOK bool
	}{
		{"noeku-p256", true},
		{"noeku-rsa", true},
		{"csemail-p256", true},
		{"cs-p256", false},
		{"cs-rsa", false},
		{"cs-p384", false},
	}
	for _, tc := range tests {
		t.Run(tc.leaf, func(t *testing.T) {
			s := mustLoadSigner(t, p, tc.leaf, "inter")
			sig, err := s.SignCMS(signedMetadata)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			sigPath := filepath.Join(dir, "sig.cms")
			if err := os.WriteFile(sigPath, sig, 0o644); err != nil {
				t.Fatal(err)
			}
			device := []string{"cms", "-verify", "-binary", "-in", sigPath, "-inform", "DER",
				"-no-CAfile", "-no-CApath", "-no-CAstore", "-verify_retcode", "-CAfile", p.path("root.pem")}
			out, err := opensslErr(dir, nil, device...)
			if tc.openSSLPurposeOK {
				if err != nil {
					t.Fatalf("openssl rejects our signature: %v", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), "unsuitable certificate purpose") {
					t.Fatalf("openssl with default purpose: got %v, want unsuitable certificate purpose", err)
				}
				// The signature itself is fine: any purpose accepts it.
				out, err = opensslErr(dir, nil, append(device, "-purpose", "any")...)
				if err != nil {
					t.Fatalf("openssl -purpose any rejects our signature: %v", err)
				}
			}
			if !bytes.Equal(out, signedMetadata) {
				t.Fatalf("openssl printed %q, want the signed content", out)
			}

			// The structure is what openssl cms -sign makes.
			dump := string(openssl(t, dir, "cms", "-cmsout", "-print", "-inform", "DER", "-in", sigPath))
			for _, want := range []string{"contentType", "signingTime", "messageDigest", "pkcs7-signedData"} {
				if !strings.Contains(dump, want) {
					t.Errorf("CMS dump lacks %s", want)
				}
			}
			wantDigest := "sha256"
			if tc.leaf == "cs-p384" {
				wantDigest = "sha384"
			}
			if !strings.Contains(dump, "algorithm: "+wantDigest) {
				t.Errorf("CMS dump lacks digest %s", wantDigest)
			}
			if strings.Contains(dump, "SMIMECapabilities") {
				t.Errorf("CMS has SMIMECapabilities; openssl -nosmimecap omits them")
			}
			if n := strings.Count(dump, "cert_info:"); n != 2 {
				t.Errorf("CMS embeds %d certificates, want 2 (signer and intermediate)", n)
			}

			v, err := VerifyCMS(sig, mustPool(t, p.path("root.pem")), time.Now())
			if err != nil {
				t.Fatalf("VerifyCMS: %v", err)
			}
			if !bytes.Equal(v.Content, signedMetadata) {
				t.Fatalf("VerifyCMS content %x, want %x", v.Content, signedMetadata)
			}
			if len(v.Signers) != 1 || !v.Signers[0].Equal(s.Cert) {
				t.Fatalf("VerifyCMS signers = %v, want the signer certificate", v.Signers)
			}
		})
	}
}

func mustPool(t *testing.T, paths ...string) *x509.CertPool {
	t.Helper()
	pool, err := LoadCertPool(paths...)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// TestSignCMSThroughKMS signs with a KMS-backed crypto.Signer (sigstore's
// in-memory fake provider) and checks that openssl accepts the result.
func TestSignCMSThroughKMS(t *testing.T) {
	p := testPKI(t)
	keyPEM, err := os.ReadFile(p.path("noeku-p256.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), fake.KmsCtxKey{}, crypto.PrivateKey(priv))
	s, err := LoadSigner(ctx, "fakekms://test-key", p.path("noeku-p256.pem"), []string{p.path("inter.pem")}, "")
	if err != nil {
		t.Fatalf("LoadSigner(fakekms): %v", err)
	}
	if _, local := s.Key.(*kmsSigner); !local {
		t.Fatalf("KMS key loaded as %T, want the KMS signer wrapper", s.Key)
	}
	sig, err := s.SignCMS(signedMetadata)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sigPath := filepath.Join(dir, "sig.cms")
	if err := os.WriteFile(sigPath, sig, 0o644); err != nil {
		t.Fatal(err)
	}
	out := openssl(t, dir, "cms", "-verify", "-binary", "-inform", "DER", "-in", sigPath, "-CAfile", p.path("root.pem"))
	if !bytes.Equal(out, signedMetadata) {
		t.Fatalf("openssl printed %q, want the signed content", out)
	}
}

func TestLoadSigner(t *testing.T) {
	p := testPKI(t)
	dir := t.TempDir()
	const password = "s3cr3t-Pa55word"
	const envName = "OTABAKE_TEST_SIGN_KEY_PASSWORD"
	t.Setenv(envName, password)
	t.Setenv("OTABAKE_TEST_SIGN_EMPTY", "")

	// Re-encode the leaf keys in every format users bring.
	keys := map[string][]string{
		"pkcs1.key":         {"rsa", "-in", p.path("noeku-rsa.key"), "-traditional", "-out", "pkcs1.key"},
		"sec1.key":          {"ec", "-in", p.path("noeku-p256.key"), "-out", "sec1.key"},
		"pkcs8-enc.key":     {"pkcs8", "-topk8", "-in", p.path("noeku-p256.key"), "-v2", "aes-256-cbc", "-passout", "env:" + envName, "-out", "pkcs8-enc.key"},
		"pkcs8-enc-rsa.key": {"pkcs8", "-topk8", "-in", p.path("noeku-rsa.key"), "-v2", "aes-128-cbc", "-passout", "env:" + envName, "-out", "pkcs8-enc-rsa.key"},
		"legacy-enc.key":    {"rsa", "-in", p.path("noeku-rsa.key"), "-traditional", "-aes256", "-passout", "env:" + envName, "-out", "legacy-enc.key"},
	}
	for _, args := range keys {
		if _, err := opensslErr(dir, nil, args...); err != nil {
			t.Fatalf("openssl %v: %v", args, err)
		}
	}
	for _, check := range []struct{ file, header string }{
		{"pkcs1.key", "BEGIN RSA PRIVATE KEY"},
		{"sec1.key", "BEGIN EC PRIVATE KEY"},
		{"pkcs8-enc.key", "BEGIN ENCRYPTED PRIVATE KEY"},
		{"legacy-enc.key", "Proc-Type: 4,ENCRYPTED"},
	} {
		b, _ := os.ReadFile(filepath.Join(dir, check.file))
		if !bytes.Contains(b, []byte(check.header)) {
			t.Fatalf("%s lacks %q; the test would not test that format", check.file, check.header)
		}
	}
	// A certificate file with a whole chain: leaf first.
	leafAndChain := filepath.Join(dir, "fullchain.pem")
	joined := append(mustRead(t, p.path("noeku-p256.pem")), mustRead(t, p.path("inter.pem"))...)
	if err := os.WriteFile(leafAndChain, joined, 0o644); err != nil {
		t.Fatal(err)
	}
	notAKey := filepath.Join(dir, "cert-as-key.pem")
	if err := os.WriteFile(notAKey, mustRead(t, p.path("root.pem")), 0o644); err != nil {
		t.Fatal(err)
	}

	in := func(name string) string { return filepath.Join(dir, name) }
	tests := []struct {
		name      string
		key, cert string
		chain     []string
		env       string
		wantChain int
		wantErr   string
		wantIs    error
	}{
		{name: "pkcs8", key: p.path("noeku-p256.key"), cert: p.path("noeku-p256.pem"), chain: []string{p.path("inter.pem")}, wantChain: 1},
		{name: "pkcs8 rsa", key: p.path("noeku-rsa.key"), cert: p.path("noeku-rsa.pem")},
		{name: "pkcs1", key: in("pkcs1.key"), cert: p.path("noeku-rsa.pem")},
		{name: "sec1", key: in("sec1.key"), cert: p.path("noeku-p256.pem")},
		{name: "encrypted pkcs8", key: in("pkcs8-enc.key"), cert: p.path("noeku-p256.pem"), env: envName},
		{name: "encrypted pkcs8 rsa", key: in("pkcs8-enc-rsa.key"), cert: p.path("noeku-rsa.pem"), env: envName},
		{name: "legacy encrypted pem", key: in("legacy-enc.key"), cert: p.path("noeku-rsa.pem"), env: envName},
		{name: "chain in certificate file", key: p.path("noeku-p256.key"), cert: leafAndChain, wantChain: 1},

		{name: "wrong password", key: in("pkcs8-enc.key"), cert: p.path("noeku-p256.pem"), env: "OTABAKE_TEST_SIGN_WRONG",
			wantErr: "OTABAKE_TEST_SIGN_WRONG", wantIs: ErrWrongPassword},
		{name: "wrong password legacy", key: in("legacy-enc.key"), cert: p.path("noeku-rsa.pem"), env: "OTABAKE_TEST_SIGN_WRONG",
			wantErr: "OTABAKE_TEST_SIGN_WRONG", wantIs: ErrWrongPassword},
		{name: "password variable unset", key: in("pkcs8-enc.key"), cert: p.path("noeku-p256.pem"), env: "OTABAKE_TEST_SIGN_UNSET",
			wantErr: "OTABAKE_TEST_SIGN_UNSET (its password) is not set"},
		{name: "password variable empty", key: in("pkcs8-enc.key"), cert: p.path("noeku-p256.pem"), env: "OTABAKE_TEST_SIGN_EMPTY",
			wantErr: "is empty"},
		{name: "no password variable named", key: in("pkcs8-enc.key"), cert: p.path("noeku-p256.pem"),
			wantErr: "is encrypted: name the environment variable"},
		{name: "certificate of another key", key: p.path("noeku-p256.key"), cert: p.path("cs-p256.pem"),
			wantErr: "does not belong to key"},
		{name: "certificate instead of key", key: notAKey, cert: p.path("noeku-p256.pem"),
			wantErr: "no PRIVATE KEY PEM block found (found CERTIFICATE)"},
		{name: "missing key file", key: in("nope.key"), cert: p.path("noeku-p256.pem"), wantErr: "nope.key"},
		{name: "missing certificate", key: p.path("noeku-p256.key"), wantErr: "no signer certificate given"},
		{name: "unknown scheme", key: "pkcs11://token/key", cert: p.path("noeku-p256.pem"),
			wantErr: "unsupported scheme pkcs11:// (use a PEM file path or one of awskms://, gcpkms://, azurekms://, hashivault://)"},
	}
	t.Setenv("OTABAKE_TEST_SIGN_WRONG", "not-the-password")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadSigner(context.Background(), tc.key, tc.cert, tc.chain, tc.env)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("LoadSigner succeeded, want error containing %q", tc.wantErr)
				}
				t.Logf("rejected: %v", err)
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tc.wantErr)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Fatalf("error %q is not %v", err, tc.wantIs)
				}
				for _, secret := range []string{password, "not-the-password"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error %q reveals a password", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadSigner: %v", err)
			}
			if len(s.Chain) != tc.wantChain {
				t.Fatalf("chain has %d certificates, want %d", len(s.Chain), tc.wantChain)
			}
			if _, err := s.SignCMS(signedMetadata); err != nil {
				t.Fatalf("SignCMS: %v", err)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCertificates(t *testing.T) {
	p := testPKI(t)
	rootPEM := mustRead(t, p.path("root.pem"))
	interPEM := mustRead(t, p.path("inter.pem"))
	block, _ := pem.Decode(rootPEM)
	keyPEM := mustRead(t, p.path("root.key"))
	tests := []struct {
		name    string
		in      []byte
		want    int
		wantErr string
	}{
		{"one PEM", rootPEM, 1, ""},
		{"PEM chain with a key in between", bytes.Join([][]byte{rootPEM, keyPEM, interPEM}, nil), 2, ""},
		{"DER", block.Bytes, 1, ""},
		{"two DER", append(append([]byte{}, block.Bytes...), block.Bytes...), 2, ""},
		{"empty", nil, 0, "input is empty"},
		{"key only", keyPEM, 0, "no CERTIFICATE block"},
		{"garbage DER", []byte{0x30, 0x03, 0x02, 0x01}, 0, "parse DER certificate"},
		{"corrupt PEM certificate", []byte("-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"), 0, "PEM block 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := ParseCertificates(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(certs) != tc.want {
				t.Fatalf("got %d certificates, want %d", len(certs), tc.want)
			}
		})
	}
}

func TestLoadCertPool(t *testing.T) {
	p := testPKI(t)
	if _, err := LoadCertPool(); err == nil {
		t.Fatal("LoadCertPool() with no files succeeded")
	}
	if _, err := LoadCertPool(p.path("root.key")); err == nil || !strings.Contains(err.Error(), "root.key") {
		t.Fatalf("LoadCertPool(key file) = %v, want an error naming the file", err)
	}
	pool, err := LoadCertPool(p.path("root.pem"), p.path("other-root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	inter, err := loadCertificates(p.path("inter.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inter[0].Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Fatalf("intermediate does not verify against the loaded pool: %v", err)
	}
}

// TestSignCMSDeterministic: with the signing time fixed, a local key signs the same content to
// the same bytes (RFC 6979 for ECDSA), so that building a release twice gives equal bundles;
// the signing time is the one given, and openssl still verifies.
func TestSignCMSDeterministic(t *testing.T) {
	p := testPKI(t)
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, leaf := range []string{"noeku-p256", "noeku-rsa", "cs-p384"} {
		t.Run(leaf, func(t *testing.T) {
			s := mustLoadSigner(t, p, leaf, "inter")
			s.SigningTime = when
			a, err := s.SignCMS(signedMetadata)
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.SignCMS(signedMetadata)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Fatal("two signatures of the same content at the same signing time differ")
			}
			if !bytes.Contains(a, []byte("260102030405Z")) {
				t.Error("the CMS does not carry signingTime 260102030405Z")
			}
			if c, _ := s.SignCMS(append([]byte("x"), signedMetadata...)); bytes.Equal(a, c) {
				t.Error("other content, same signature")
			}
			if _, err := VerifyCMS(a, mustPool(t, p.path("root.pem")), time.Now()); err != nil {
				t.Fatalf("VerifyCMS: %v", err)
			}
			dir := t.TempDir()
			sigPath := filepath.Join(dir, "sig.cms")
			os.WriteFile(sigPath, a, 0o644)
			if _, err := opensslErr(dir, nil, "cms", "-verify", "-binary", "-in", sigPath, "-inform", "DER", "-purpose", "any",
				"-no-CAfile", "-no-CApath", "-no-CAstore", "-CAfile", p.path("root.pem")); err != nil {
				t.Fatalf("openssl rejects the deterministic signature: %v", err)
			}
		})
	}
}
