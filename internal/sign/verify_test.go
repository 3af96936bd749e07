package sign

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// opensslSign signs signedMetadata with `openssl cms -sign` as
// rugix-bundler does; extra args go at the end.
func opensslSign(t *testing.T, p pki, leaf string, extra ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "signed-metadata.raw")
	if err := os.WriteFile(in, signedMetadata, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "signed-metadata.cms")
	args := append([]string{"cms", "-sign", "-in", in, "-signer", p.path(leaf + ".pem"), "-inkey", p.path(leaf + ".key"),
		"-out", out, "-outform", "DER", "-nosmimecap", "-binary"}, extra...)
	openssl(t, dir, args...)
	return mustRead(t, out)
}

// expiredSigner issues, with Go, a signer certificate that expired in 2020
// under the openssl-made intermediate.
func expiredSigner(t *testing.T, p pki) *Signer {
	t.Helper()
	block, _ := pem.Decode(mustRead(t, p.path("inter.key")))
	interKey, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := loadCertificates(p.path("inter.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(4711),
		Subject:               pkix.Name{CommonName: "expired signer"},
		NotBefore:             time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, inter[0], &key.PublicKey, interKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Signer{Key: key, Cert: cert, Chain: inter}
}

func TestVerifyCMS(t *testing.T) {
	p := testPKI(t)
	now := time.Now()
	sign := func(s *Signer) []byte {
		t.Helper()
		der, err := s.SignCMS(signedMetadata)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	good := sign(mustLoadSigner(t, p, "cs-p256", "inter"))
	leafNotAfter := mustLoadSigner(t, p, "cs-p256").Cert.NotAfter

	tamperedContent := bytes.Clone(good)
	i := bytes.Index(tamperedContent, signedMetadata)
	if i < 0 {
		t.Fatal("signed content not found in the CMS")
	}
	tamperedContent[i+30] ^= 0x01
	tamperedSig := bytes.Clone(good)
	tamperedSig[len(tamperedSig)-1] ^= 0x01

	interSigner := &Signer{Cert: mustLoadCert(t, p.path("inter.pem")), Key: mustLoadSigner(t, p, "cs-p256").Key}
	interSigner.Key = mustLoadKey(t, p.path("inter.key"))

	tests := []struct {
		name    string
		der     []byte
		roots   []string
		at      time.Time
		wantIs  error
		wantErr string
		// oracle: openssl cms -verify -purpose any must agree.
		oracle bool
	}{
		{name: "ours, codeSigning leaf via intermediate", der: good, oracle: true},
		{name: "ours, no EKU RSA", der: sign(mustLoadSigner(t, p, "noeku-rsa", "inter")), oracle: true},
		{name: "ours, P-384", der: sign(mustLoadSigner(t, p, "cs-p384", "inter")), oracle: true},
		{name: "openssl, codeSigning leaf, -certfile intermediate", der: opensslSign(t, p, "cs-p256", "-nodetach", "-certfile", p.path("inter.pem")), oracle: true},
		{name: "openssl, no EKU", der: opensslSign(t, p, "noeku-p256", "-nodetach", "-certfile", p.path("inter.pem")), oracle: true},
		{name: "openssl, -noattr", der: opensslSign(t, p, "cs-p256", "-nodetach", "-noattr", "-certfile", p.path("inter.pem")), oracle: true},
		{name: "openssl, -keyid", der: opensslSign(t, p, "cs-p256", "-nodetach", "-keyid", "-certfile", p.path("inter.pem")), oracle: true},
		{name: "several roots, one matches", der: good, roots: []string{p.path("other-root.pem"), p.path("root.pem")}, oracle: true},

		{name: "wrong root", der: good, roots: []string{p.path("other-root.pem")},
			wantIs: ErrUntrusted, wantErr: "does not lead to a trusted root", oracle: true},
		{name: "intermediate not embedded", der: sign(mustLoadSigner(t, p, "cs-p256")),
			wantIs: ErrUntrusted, wantErr: `issuer "CN=otabake test intermediate"`, oracle: true},
		{name: "expired at verification time", der: good, at: leafNotAfter.Add(24 * time.Hour),
			wantIs: ErrExpired, wantErr: "expired at " + leafNotAfter.UTC().Format(time.RFC3339), oracle: true},
		{name: "expired certificate", der: sign(expiredSigner(t, p)),
			wantIs: ErrExpired, wantErr: `"CN=expired signer" expired at 2020-01-01T00:00:00Z`, oracle: true},
		{name: "tampered content", der: tamperedContent, wantIs: ErrDigestMismatch, wantErr: "digest", oracle: true},
		{name: "tampered signature", der: tamperedSig, wantIs: ErrBadSignature, wantErr: "ECDSA signature does not verify", oracle: true},
		{name: "serverAuth only", der: sign(mustLoadSigner(t, p, "server-p256", "inter")),
			wantIs: ErrKeyUsage, wantErr: "extended key usage [serverAuth] without codeSigning"},
		{name: "key usage without digitalSignature", der: sign(mustLoadSigner(t, p, "nodigsig-p256", "inter")),
			wantIs: ErrKeyUsage, wantErr: "without digitalSignature"},
		{name: "CA certificate as signer", der: sign(interSigner), wantIs: ErrKeyUsage, wantErr: "is a CA certificate"},
		{name: "openssl RSA uses rsaEncryption", der: opensslSign(t, p, "noeku-rsa", "-nodetach", "-certfile", p.path("inter.pem")),
			wantIs: ErrBadSignature, wantErr: "rsaEncryption"},
		{name: "detached", der: opensslSign(t, p, "cs-p256", "-certfile", p.path("inter.pem")),
			wantIs: ErrMalformed, wantErr: "no content attached"},
		{name: "BER streaming", der: opensslSign(t, p, "cs-p256", "-nodetach", "-stream"),
			wantIs: ErrMalformed, wantErr: "at offset 0: indefinite length"},
		{name: "truncated", der: good[:len(good)-10], wantIs: ErrMalformed, wantErr: "at offset 0: length"},
		{name: "trailing bytes", der: append(bytes.Clone(good), 0, 0), wantIs: ErrMalformed, wantErr: "at offset " + strconv.Itoa(len(good)) + ": 2 trailing bytes"},
		{name: "certificate, not CMS", der: mustLoadCert(t, p.path("root.pem")).Raw, wantIs: ErrMalformed, wantErr: "ContentInfo"},
		{name: "empty", der: nil, wantIs: ErrMalformed, wantErr: "input is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			roots := tc.roots
			if roots == nil {
				roots = []string{p.path("root.pem")}
			}
			at := tc.at
			if at.IsZero() {
				at = now
			}
			v, err := VerifyCMS(tc.der, mustPool(t, roots...), at)
			if tc.wantIs == nil {
				if err != nil {
					t.Fatalf("VerifyCMS: %v", err)
				}
				if !bytes.Equal(v.Content, signedMetadata) {
					t.Fatalf("content %x, want %x", v.Content, signedMetadata)
				}
				if len(v.Signers) != 1 {
					t.Fatalf("%d signers, want 1", len(v.Signers))
				}
			} else {
				if err == nil {
					t.Fatalf("VerifyCMS succeeded, want %v", tc.wantIs)
				}
				t.Logf("rejected: %v", err)
				if !errors.Is(err, tc.wantIs) {
					t.Fatalf("error %q is not %v", err, tc.wantIs)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tc.wantErr)
				}
			}
			if tc.oracle {
				checkOracle(t, tc.der, roots, at, tc.wantIs == nil)
			}
		})
	}

	if _, err := VerifyCMS(good, nil, now); err == nil || !strings.Contains(err.Error(), "no trusted root") {
		t.Fatalf("VerifyCMS with nil roots = %v, want a refusal", err)
	}
}

// checkOracle runs openssl cms -verify on der and checks that it agrees.
// -purpose any: OpenSSL 3.0 has no code-signing purpose, and its default
// (smime_sign) is the 0.8 rule, not the 1.x one checked here; EKU cases are
// therefore not compared.
func checkOracle(t *testing.T, der []byte, roots []string, at time.Time, wantOK bool) {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "sig.cms")
	if err := os.WriteFile(in, der, 0o644); err != nil {
		t.Fatal(err)
	}
	var rootPEM []byte
	for _, r := range roots {
		rootPEM = append(rootPEM, mustRead(t, r)...)
	}
	ca := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(ca, rootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"cms", "-verify", "-binary", "-inform", "DER", "-in", in, "-no-CApath", "-no-CAstore",
		"-CAfile", ca, "-attime", strconv.FormatInt(at.Unix(), 10), "-purpose", "any"}
	out, err := opensslErr(dir, nil, args...)
	switch {
	case wantOK && err != nil:
		t.Fatalf("openssl rejects what VerifyCMS accepts: %v", err)
	case wantOK && !bytes.Equal(out, signedMetadata):
		t.Fatalf("openssl printed %q, want the signed content", out)
	case !wantOK && err == nil:
		t.Fatalf("openssl accepts what VerifyCMS rejects")
	}
}

func TestSignerCertificates(t *testing.T) {
	p := testPKI(t)
	for _, tc := range []struct {
		name string
		der  []byte
	}{
		{"ours", func() []byte {
			der, err := mustLoadSigner(t, p, "cs-p256", "inter").SignCMS(signedMetadata)
			if err != nil {
				t.Fatal(err)
			}
			return der
		}()},
		{"openssl -keyid", opensslSign(t, p, "cs-p256", "-nodetach", "-keyid", "-certfile", p.path("inter.pem"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := SignerCertificates(tc.der)
			if err != nil {
				t.Fatal(err)
			}
			if len(certs) != 1 || certs[0].Subject.CommonName != "signer codeSigning p256" {
				t.Fatalf("signer certificates = %v, want the one signer", certs)
			}
		})
	}
	if _, err := SignerCertificates([]byte{0x30, 0x80}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("SignerCertificates(garbage) = %v, want ErrMalformed", err)
	}
}

func mustLoadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := loadCertificates(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func mustLoadKey(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := loadPEMKey(path, "")
	if err != nil {
		t.Fatal(err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("%s holds %T, want ECDSA", path, k)
	}
	return ek
}

// TestAttachedContent: the content of a signature made by openssl comes back unverified; a
// detached signature and garbage are refused with ErrMalformed.
func TestAttachedContent(t *testing.T) {
	p := testPKI(t)
	der := opensslSign(t, p, "noeku-p256", "-nodetach")
	got, err := AttachedContent(der)
	if err != nil || !bytes.Equal(got, signedMetadata) {
		t.Fatalf("AttachedContent = %q, %v; want the signed metadata", got, err)
	}
	detached := opensslSign(t, p, "noeku-p256")
	for name, bad := range map[string][]byte{"detached": detached, "empty": nil, "garbage": []byte("not a signature"), "truncated": der[:len(der)/2]} {
		if _, err := AttachedContent(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}
