package bundle

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenDir is a rugix-bundler directory that exercises every optional manifest key spelling
// rugix-bundler normalises (sha512-256 vs sha512_256), a duplicated block, an execute payload
// and the common "deduplication" misspelling.
const goldenTOML = `update-type = "full"
hash-algorithm = "sha512-256"

[[payloads]]
filename = "boot.img"
[payloads.delivery]
type = "slot"
slot = "boot"
[payloads.block-encoding]
chunker = "fixed-4"
hash-algorithm = "sha512_256"
deduplicate = true
deduplication = true

[[payloads]]
filename = "run.sh"
[payloads.delivery]
type = "execute"
handler = ["/bin/sh", "-"]
`

// goldenManifest is what serde_json::to_string writes for goldenTOML (§5.3): schema key order,
// hash algorithms as "sha512_256", absent optional keys omitted.
const goldenManifest = `{"update-type":"full","hash-algorithm":"sha512_256","payloads":[` +
	`{"delivery":{"type":"slot","slot":"boot"},"filename":"boot.img","block-encoding":{"chunker":"fixed-4","hash-algorithm":"sha512_256","deduplicate":true}},` +
	`{"delivery":{"type":"execute","handler":["/bin/sh","-"]},"filename":"run.sh"}]}`

func h512_256(b []byte) []byte { s := sha512.Sum512_256(b); return s[:] }

// vlen is the value-length part of an atom head, written out independently of package stlv.
func vlen(n int) string {
	if n < 127 {
		return hex.EncodeToString([]byte{0x80 | byte(n)})
	}
	v := n - 127
	var digits []byte
	for {
		digits = append([]byte{byte(v & 0x7f)}, digits...)
		v >>= 7
		if v == 0 {
			break
		}
	}
	for i := 0; i < len(digits)-1; i++ {
		digits[i] |= 0x80
	}
	return "ff" + hex.EncodeToString(digits)
}

func val(tag string, v []byte) string { return tag + vlen(len(v)) + hex.EncodeToString(v) }

// TestGoldenUncompressed builds the bundle rugix-bundler's pack writes for goldenTOML by hand,
// atom by atom from the spec (§1.5–§1.7, §3.2–§3.3), and requires Create's output to equal it
// byte for byte.
func TestGoldenUncompressed(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "payloads"), 0o755)
	os.WriteFile(filepath.Join(dir, ManifestFile), []byte(goldenTOML), 0o644)
	a, bb := bytes.Repeat([]byte("a"), 4096), bytes.Repeat([]byte("b"), 1808)
	boot := append(append(append([]byte{}, a...), a...), bb...)
	script := []byte("echo hi\n")
	os.WriteFile(filepath.Join(dir, "payloads", "boot.img"), boot, 0o644)
	os.WriteFile(filepath.Join(dir, "payloads", "run.sh"), script, 0o644)

	hashes := append(append(h512_256(a), h512_256(a)...), h512_256(bb)...)
	ph1 := "0959ca7540" + "40ed931440" + val("55872cf8", []byte("fixed-4")) + val("7f1f994b", []byte("sha512-256")) +
		"0590292681" + "01" + val("76b3d7a0", hashes) + "40ed931400" + "0959ca7500"
	ph2 := "0959ca7540" + "0959ca7500"
	ph1b, _ := hex.DecodeString(ph1)
	ph2b, _ := hex.DecodeString(ph2)
	header := "49af643340" + val("161aa242", []byte(goldenManifest)) + "20f3d16b81" + "00" + val("5cb80dd6", []byte("sha512-256")) +
		"1373799240" + "45ca7e7e40" + val("1b231de7", []byte("boot")) + "45ca7e7e00" +
		val("5f6a60b1", h512_256(ph1b)) + val("0c8d1fd0", h512_256(boot)) + "1373799200" +
		"1373799240" + "3adf32f540" + val("4b3836a2", []byte("/bin/sh")) + val("4b3836a2", []byte("-")) + "3adf32f500" +
		val("5f6a60b1", h512_256(ph2b)) + val("0c8d1fd0", h512_256(script)) + "1373799200" + "49af643300"
	stored := append(append([]byte{}, a...), bb...)
	want := "6b50741c40" + header + "01f38fba40" +
		"490cafaf40" + ph1 + val("42fd641a", stored) + "490cafaf00" +
		"490cafaf40" + ph2 + val("42fd641a", script) + "490cafaf00" +
		"01f38fba00" + "6b50741c00"
	headerBytes, _ := hex.DecodeString(header)
	wantHash := "sha512-256:" + hex.EncodeToString(h512_256(headerBytes))

	out := filepath.Join(t.TempDir(), "golden.rugixb")
	res, warnings, err := CreateFromDir(context.Background(), dir, out, false, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], `"deduplicate"`) {
		t.Errorf("warnings = %q, want one about deduplication", warnings)
	}
	got, _ := os.ReadFile(out)
	if hex.EncodeToString(got) != want {
		wb, _ := hex.DecodeString(want)
		i := 0
		for i < len(got) && i < len(wb) && got[i] == wb[i] {
			i++
		}
		t.Fatalf("bundle differs from the hand-built one at byte %d (got %d bytes, want %d)", i, len(got), len(wb))
	}
	if res.Hash != wantHash {
		t.Fatalf("hash %s, want %s", res.Hash, wantHash)
	}
	// The same spec through the Go API (no TOML) gives the same bytes when it spells the
	// same manifest.
	spec := Spec{HashAlgorithm: SHA512_256, Payloads: []Payload{
		{Slot: "boot", Path: filepath.Join(dir, "payloads", "boot.img"), BlockEncoding: &BlockEncoding{Chunker: "fixed-4", HashAlgorithm: SHA512_256, Deduplicate: true}},
		{Handler: []string{"/bin/sh", "-"}, Path: filepath.Join(dir, "payloads", "run.sh")},
	}}
	out2 := filepath.Join(t.TempDir(), "api.rugixb")
	if _, err := Create(context.Background(), out2, spec, CreateOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	got2, _ := os.ReadFile(out2)
	if !bytes.Equal(got, got2) {
		t.Fatal("Create from a Spec differs from CreateFromDir")
	}
}

func TestManifestJSON(t *testing.T) {
	tests := []struct {
		name, toml, want string
	}{
		{"bakery", `update-type = "full"
[[payloads]]
filename = "partition-2.img"
delivery = { type = "slot", slot = "boot" }
block-encoding = { chunker = "casync-64", deduplicate = true, compression = { type = "xz" } }
[[payloads]]
filename = "partition-5.img"
delivery = { type = "slot", slot = "system" }
block-encoding = { chunker = "casync-64", deduplicate = true, compression = { type = "xz" } }
`, `{"update-type":"full","payloads":[{"delivery":{"type":"slot","slot":"boot"},"filename":"partition-2.img","block-encoding":{"chunker":"casync-64","deduplicate":true,"compression":{"type":"xz"}}},{"delivery":{"type":"slot","slot":"system"},"filename":"partition-5.img","block-encoding":{"chunker":"casync-64","deduplicate":true,"compression":{"type":"xz"}}}]}`},
		{"meta-rugix with level and explicit false", `update-type = "incremental"
hash-algorithm = "sha256"
[[payloads]]
filename = "payload1.raw"
[payloads.delivery]
type = "slot"
slot = "system"
[payloads.block-encoding]
chunker = "casync-64"
hash-algorithm = "sha512-256"
deduplicate = false
compression = { type = "xz", level = 9 }
`, `{"update-type":"incremental","hash-algorithm":"sha256","payloads":[{"delivery":{"type":"slot","slot":"system"},"filename":"payload1.raw","block-encoding":{"chunker":"casync-64","hash-algorithm":"sha512_256","deduplicate":false,"compression":{"type":"xz","level":9}}}]}`},
		{"delta and html characters", `update-type = "full"
[[payloads]]
filename = "a<b>&c.xdelta"
delivery = { type = "slot", slot = "system" }
block-encoding = { chunker = "fixed-256", compression = { type = "xz" } }
delta-encoding = { inputs = [{ hashes = ["sha512_256:` + strings.Repeat("AB", 32) + `"] }], format = "xdelta", original-hash = "sha512-256:` + strings.Repeat("cd", 32) + `" }
`, `{"update-type":"full","payloads":[{"delivery":{"type":"slot","slot":"system"},"filename":"a<b>&c.xdelta","block-encoding":{"chunker":"fixed-256","compression":{"type":"xz"}},"delta-encoding":{"inputs":[{"hashes":["sha512-256:` + strings.Repeat("ab", 32) + `"]}],"format":"xdelta","original-hash":"sha512-256:` + strings.Repeat("cd", 32) + `"}}]}`},
		{"escapes as serde_json writes them", "update-type = \"full\"\n[[payloads]]\nfilename = \"a\\u2028b\\\\u2029\\u0001\\t\\\"\"\ndelivery = { type = \"slot\", slot = \"s\" }\n",
			"{\"update-type\":\"full\",\"payloads\":[{\"delivery\":{\"type\":\"slot\",\"slot\":\"s\"},\"filename\":\"a\u2028b\\\\u2029\\u0001\\t\\\"\"}]}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, _, err := parseManifest([]byte(tt.toml), "/nonexistent")
			if err != nil {
				t.Fatal(err)
			}
			got, err := spec.manifestJSON()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("manifest JSON:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestManifestErrors(t *testing.T) {
	tests := []struct{ toml, want string }{
		{`payloads = []`, `missing key "update-type"`},
		{`update-type = "full"`, `missing key "payloads"`},
		{`update-type = "partial"
payloads = []`, `update-type "partial"`},
		{`update-type = "full"
[[payloads]]
filename = "x"
delivery = { type = "slot" }`, `needs a slot`},
		{`update-type = "full"
[[payloads]]
filename = "../x"
delivery = { type = "slot", slot = "a" }`, `plain file name`},
		{`update-type = "full"
[[payloads]]
filename = "x"
delivery = { type = "slot", slot = "a" }
block-encoding = { chunker = "rabin-64" }`, `chunker`},
		{`update-type = "full"
[[payloads]]
filename = "x"
delivery = { type = "slot", slot = "a" }
block-encoding = { chunker = "casync-64", compression = { type = "zstd" } }`, `"zstd"`},
		{`update-type = "full"
hash-algorithm = "md5"
payloads = []`, `unknown hash algorithm`},
	}
	for _, tt := range tests {
		_, _, err := parseManifest([]byte(tt.toml), "/nonexistent")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.toml, err, tt.want)
		}
	}
}
