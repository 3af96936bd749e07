package bundle

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/bundle/stlv"
	"github.com/otabake/otabake/internal/sign"
)

type testPKI struct {
	root   *x509.Certificate
	pool   *x509.CertPool
	signer *sign.Signer
}

// newPKI makes a root and a signer certificate as rugix's test keys are made: P-256, the signer
// with CA:FALSE, keyUsage digitalSignature and no EKU.
func newPKI(t *testing.T, notBefore, notAfter time.Time) testPKI {
	t.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test Signer"},
		NotBefore: notBefore, NotAfter: notAfter, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, &key.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return testPKI{root: root, pool: pool, signer: &sign.Signer{Key: key, Cert: cert}}
}

func smallBundle(t *testing.T, enc *BlockEncoding) (string, *Result) {
	t.Helper()
	dir := t.TempDir()
	p := writeFile(t, dir, "system.img", testData(600<<10, 7))
	out := filepath.Join(dir, "b.rugixb")
	res, err := Create(context.Background(), out, Spec{Payloads: []Payload{{Slot: "system", Path: p, BlockEncoding: enc}}}, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

func TestSignatures(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	pki := newPKI(t, now.Add(-time.Hour), now.Add(time.Hour))
	path, res := smallBundle(t, &BlockEncoding{Chunker: "casync-16", Deduplicate: true})
	signed := filepath.Join(filepath.Dir(path), "signed.rugixb")
	if err := Sign(ctx, path, signed, pki.signer); err != nil {
		t.Fatal(err)
	}
	if err := Sign(ctx, signed, signed, pki.signer); err != nil { // twice, in place
		t.Fatal(err)
	}
	b, err := Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Hash() != res.Hash || len(b.Signatures()) != 2 {
		t.Fatalf("signed twice: hash %s (want %s), %d signatures", b.Hash(), res.Hash, len(b.Signatures()))
	}
	if len(b.SignedMetadata()) != 90 {
		t.Fatalf("signed metadata is %d bytes, want 90", len(b.SignedMetadata()))
	}
	rep, err := b.Verify(ctx, VerifyOptions{Roots: pki.pool, BundleHash: res.Hash})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Signatures) != 2 || !rep.Signatures[0].Verified || rep.Signatures[1].Signers[0] != "CN=Test Signer" {
		t.Fatalf("report %+v", rep.Signatures)
	}

	other := newPKI(t, now.Add(-time.Hour), now.Add(time.Hour))
	expired := newPKI(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	expiredPath := filepath.Join(filepath.Dir(path), "expired.rugixb")
	if err := Sign(ctx, path, expiredPath, expired.signer); err != nil {
		t.Fatal(err)
	}
	eb, err := Open(expiredPath)
	if err != nil {
		t.Fatal(err)
	}
	defer eb.Close()
	unsigned, _ := Open(path)
	defer unsigned.Close()
	tests := []struct {
		name string
		b    *Bundle
		opts VerifyOptions
		want string
	}{
		{"wrong root", b, VerifyOptions{Roots: other.pool}, "no valid signature"},
		{"expired", eb, VerifyOptions{Roots: expired.pool}, "validity"},
		{"unsigned", unsigned, VerifyOptions{Roots: pki.pool}, "no signatures"},
		{"wrong hash", b, VerifyOptions{BundleHash: "sha512-256:" + strings.Repeat("00", 32)}, "invalid header hash"},
	}
	for _, tt := range tests {
		_, err := tt.b.Verify(ctx, tt.opts)
		if err == nil || !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}

	// A signature over another bundle's metadata is refused when added and rejected when found.
	path2, _ := smallBundle(t, nil)
	b2, _ := Open(path2)
	defer b2.Close()
	foreign, err := pki.signer.SignCMS(b2.SignedMetadata())
	if err != nil {
		t.Fatal(err)
	}
	if err := AddSignature(ctx, path, filepath.Join(t.TempDir(), "x"), foreign); err == nil || !strings.Contains(err.Error(), "signs bundle hash") {
		t.Fatalf("foreign signature added: %v", err)
	}
	if err := unsigned.writeWithSignature(ctx, filepath.Join(t.TempDir(), "f.rugixb"), foreign); err != nil {
		t.Fatal(err)
	}
}

// TestTamper flips bytes in the header, a payload header and the payload data and checks that
// Verify fails and names what broke.
func TestTamper(t *testing.T) {
	for _, compressed := range []bool{false, true} {
		enc := &BlockEncoding{Chunker: "fixed-16", Deduplicate: true}
		if compressed {
			enc.Compression = &Compression{Level: level(0)}
		}
		path, res := smallBundle(t, enc)
		data, _ := os.ReadFile(path)
		b, _ := Open(path)
		p := b.Payloads()[0]
		b.Close()
		tests := []struct {
			name string
			off  int64
			want string
		}{
			{"header", int64(len(Magic)) + 40, "invalid header hash"},
			{"payload header", p.HeaderOffset + p.HeaderSize - 20, "invalid payload header hash"},
			{"first block", p.DataOffset + 30, "block 0"},
			{"later block", p.DataOffset + p.DataSize - 100, "bundle offset"},
		}
		for _, tt := range tests {
			bad := append([]byte(nil), data...)
			bad[tt.off] ^= 0x01
			f := filepath.Join(t.TempDir(), "bad.rugixb")
			os.WriteFile(f, bad, 0o644)
			tb, err := Open(f)
			if err != nil {
				if strings.Contains(tt.name, "header") {
					continue // a flipped length or tag is already a structural error
				}
				t.Fatalf("compressed=%v %s: open: %v", compressed, tt.name, err)
			}
			_, err = tb.Verify(context.Background(), VerifyOptions{BundleHash: res.Hash})
			tb.Close()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("compressed=%v %s: error %v, want %q", compressed, tt.name, err, tt.want)
			}
		}
	}
}

func TestReaderRejects(t *testing.T) {
	path, _ := smallBundle(t, &BlockEncoding{Chunker: "casync-16"})
	data, _ := os.ReadFile(path)
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "not a Rugix bundle"},
		{"not a bundle", []byte("hello world, not a bundle"), "not a Rugix bundle"},
		{"truncated header", data[:100], "truncated"},
		{"truncated data", data[:len(data)-5000], "past the end"},
		{"trailing", append(append([]byte{}, data...), 1, 2, 3), "trailing bytes"},
		{"hostile length", append(append([]byte{}, Magic...), stlv.AppendHead(nil, stlv.Head{Tag: TagBundleHeaderManifest, Kind: stlv.Value, Len: 1 << 40})...), "size limit"},
	}
	for _, tt := range tests {
		_, err := NewReader(bytesReaderAt(tt.in), int64(len(tt.in)))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), "offset") {
			t.Errorf("%s: error %q does not name an offset", tt.name, err)
		}
	}
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
