package sign

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// FuzzVerifyCMS feeds untrusted bytes to VerifyCMS. The seed corpus in
// testdata/fuzz/FuzzVerifyCMS holds openssl-made signatures (attached,
// -noattr, -keyid, detached, BER -stream, truncated) under
// testdata/fuzz-root.pem, so mutations reach deep into the verifier.
func FuzzVerifyCMS(f *testing.F) {
	rootPEM, err := os.ReadFile("testdata/fuzz-root.pem")
	if err != nil {
		f.Fatal(err)
	}
	roots, err := LoadCertPool("testdata/fuzz-root.pem")
	if err != nil {
		f.Fatal(err)
	}
	// A fixed time inside the seed certificates' validity keeps results
	// reproducible.
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff})
	f.Add(rootPEM)
	f.Fuzz(func(t *testing.T, der []byte) {
		if certs, err := SignerCertificates(der); err == nil && len(certs) == 0 {
			t.Fatal("SignerCertificates succeeded without a signer")
		}
		v, err := VerifyCMS(der, roots, at)
		if err != nil {
			if v != nil {
				t.Fatalf("VerifyCMS returned a result with error %v", err)
			}
			return
		}
		if len(v.Signers) == 0 {
			t.Fatal("VerifyCMS succeeded without a verified signer")
		}
		// A verified signature must not survive the loss of its last byte.
		if _, err := VerifyCMS(der[:len(der)-1], roots, at); err == nil {
			t.Fatal("VerifyCMS accepted a truncated copy of a valid signature")
		}
	})
}

// TestFuzzSeedsVerify pins the seeds' meaning: the valid seeds verify, so
// the fuzzer starts from inputs that pass every check.
func TestFuzzSeedsVerify(t *testing.T) {
	roots, err := LoadCertPool("testdata/fuzz-root.pem")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		seed string
		ok   bool
	}{
		{"valid", true}, {"noattr", true}, {"keyid", true},
		{"detached", false}, {"ber", false}, {"truncated", false},
	} {
		t.Run(tc.seed, func(t *testing.T) {
			der := readSeed(t, "testdata/fuzz/FuzzVerifyCMS/"+tc.seed)
			v, err := VerifyCMS(der, roots, at)
			if tc.ok {
				if err != nil {
					t.Fatalf("seed does not verify: %v", err)
				}
				if !bytes.HasPrefix(v.Content, []byte{0x61, 0xd0, 0x87, 0x1e, 0x40}) || len(v.Content) != 90 {
					t.Fatalf("seed content %x is not a SignedMetadata", v.Content)
				}
			} else if err == nil {
				t.Fatal("broken seed verifies")
			}
		})
	}
}

// readSeed decodes a corpus file written as `go test fuzz v1` with one
// []byte("\xNN...") line, the only form the checked-in seeds use.
func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) != 2 || string(lines[0]) != "go test fuzz v1" {
		t.Fatalf("%s: not a one-value fuzz corpus file", path)
	}
	lit := bytes.TrimSuffix(bytes.TrimPrefix(lines[1], []byte(`[]byte("`)), []byte(`")`))
	if len(lit)%4 != 0 {
		t.Fatalf("%s: unexpected literal form", path)
	}
	out := make([]byte, 0, len(lit)/4)
	for i := 0; i < len(lit); i += 4 {
		var c byte
		for _, h := range lit[i+2 : i+4] {
			c <<= 4
			switch {
			case h >= '0' && h <= '9':
				c |= h - '0'
			case h >= 'a' && h <= 'f':
				c |= h - 'a' + 10
			default:
				t.Fatalf("%s: bad hex digit %q", path, h)
			}
		}
		out = append(out, c)
	}
	return out
}
