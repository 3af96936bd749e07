package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/testkit"
	"github.com/otabake/otabake/internal/tool"
)

func otabake(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(append([]string{"otabake", "--no-progress"}, args...), strings.NewReader(""), &out, &errb)
	if code != 0 {
		return out.String(), errb.String(), fmt.Errorf("exit %d: %s", code, errb.String())
	}
	return out.String(), errb.String(), nil
}

func mustOtabake(t *testing.T, args ...string) string {
	t.Helper()
	out, _, err := otabake(t, args...)
	if err != nil {
		t.Fatalf("otabake %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// sh runs name with args in dir (testkit.RunCmd with a working directory).
func sh(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	return testkit.RunCmd(t, cmd)
}

// makeBundleDir writes a rugix-bundler directory with a slot payload and an execute payload.
func makeBundleDir(t *testing.T, compression string) string {
	t.Helper()
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "payloads"), 0o755)
	r := rand.New(rand.NewPCG(1, 2))
	img := make([]byte, 1<<20) // random, 512 KiB of zeros (repeated blocks), random
	for i := range img {
		if i < 256<<10 || i >= 768<<10 {
			img[i] = byte(r.Uint32())
		}
	}
	os.WriteFile(filepath.Join(dir, "payloads", "system.img"), img, 0o644)
	os.WriteFile(filepath.Join(dir, "payloads", "post.sh"), []byte("#!/bin/sh\necho done\n"), 0o644)
	toml := `update-type = "full"
[[payloads]]
filename = "system.img"
delivery = { type = "slot", slot = "system" }
block-encoding = { chunker = "casync-16", deduplicate = true` + compression + ` }
[[payloads]]
filename = "post.sh"
delivery = { type = "execute", handler = ["/bin/sh", "-"] }
block-encoding = { chunker = "fixed-4" }
`
	os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), []byte(toml), 0o644)
	return dir
}

func TestBundleCLI(t *testing.T) {
	for _, tc := range []struct{ name, compression string }{{"plain", ""}, {"xz", `, compression = { type = "xz", level = 1 }`}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := makeBundleDir(t, tc.compression)
			work := t.TempDir()
			out := filepath.Join(work, "system.rugixb")
			hash := strings.TrimSpace(mustOtabake(t, "bundle", "create", dir, "-o", out))
			if !strings.HasPrefix(hash, "sha512-256:") || len(hash) != len("sha512-256:")+64 {
				t.Fatalf("create printed %q", hash)
			}
			if got := mustOtabake(t, "bundle", "hash", out); got != hash+"\n" {
				t.Fatalf("hash printed %q, want %q", got, hash+"\n")
			}
			hashFile := filepath.Join(work, "system.rugixb-hash")
			mustOtabake(t, "bundle", "hash", out, "--output", hashFile)
			if got, _ := os.ReadFile(hashFile); string(got) != hash {
				t.Fatalf("hash file holds %q, want %q without newline", got, hash)
			}

			var insp bundle.Inspection
			if err := json.Unmarshal([]byte(mustOtabake(t, "--json", "bundle", "inspect", out)), &insp); err != nil {
				t.Fatal(err)
			}
			if insp.Hash != hash || len(insp.Payloads) != 2 || insp.Payloads[0].BlockEncoding == nil ||
				insp.Payloads[0].BlockEncoding.StoredBlocks >= insp.Payloads[0].BlockEncoding.Blocks || insp.Payloads[1].Handler[0] != "/bin/sh" {
				t.Fatalf("inspect: %+v", insp)
			}
			if human := mustOtabake(t, "bundle", "inspect", out); !strings.Contains(human, `0: slot="system"`) || !strings.Contains(human, "execute(/bin/sh -)") {
				t.Fatalf("inspect output:\n%s", human)
			}
			mustOtabake(t, "bundle", "verify", out, "--bundle-hash", hash)
			mustOtabake(t, "bundle", "verify", out, "--bundle-hash", "@"+hashFile)
			if _, _, err := otabake(t, "bundle", "verify", out, "--bundle-hash", "sha512-256:"+strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "invalid header hash") {
				t.Fatalf("verify with a wrong hash: %v", err)
			}
			for _, sel := range []string{"0", "system"} {
				ext := filepath.Join(work, "extracted-"+sel)
				mustOtabake(t, "bundle", "extract", out, "--payload", sel, "-o", ext)
				a, _ := os.ReadFile(ext)
				b, _ := os.ReadFile(filepath.Join(dir, "payloads", "system.img"))
				if sha256.Sum256(a) != sha256.Sum256(b) {
					t.Fatalf("extract --payload %s: bytes differ", sel)
				}
			}
			if _, _, err := otabake(t, "bundle", "extract", out, "--payload", "boot", "-o", filepath.Join(work, "x")); err == nil {
				t.Fatal("extract of a missing slot succeeded")
			}
		})
	}
}

func TestBundleCreateWarnsAboutDeduplication(t *testing.T) {
	dir := makeBundleDir(t, "")
	toml, _ := os.ReadFile(filepath.Join(dir, "rugix-bundle.toml"))
	os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), bytes.Replace(toml, []byte("deduplicate"), []byte("deduplication"), 1), 0o644)
	_, stderr, err := otabake(t, "bundle", "create", dir, "-o", filepath.Join(t.TempDir(), "b.rugixb"), "--without-compression")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "deduplication") || !strings.Contains(stderr, `"deduplicate"`) {
		t.Fatalf("no warning about deduplication in %q", stderr)
	}
}

// readCaibx returns the chunk boundaries (end offsets) and ids of a casync blob index.
func readCaibx(t *testing.T, path string) ([]uint64, [][]byte) {
	t.Helper()
	d, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const header, table, tail, item = 48, 16, 40, 40
	if len(d) < header+table+tail || (len(d)-header-table-tail)%item != 0 {
		t.Fatalf("%s: unexpected caibx size %d", path, len(d))
	}
	var ends []uint64
	var ids [][]byte
	for off := header + table; off+tail < len(d); off += item {
		ends = append(ends, binary.LittleEndian.Uint64(d[off:]))
		ids = append(ids, d[off+8:off+item])
	}
	return ends, ids
}

// TestBlocksMatchCasync compares `otabake bundle blocks` with the chunk boundaries and ids of
// Debian's casync for several inputs and chunk sizes.
func TestBlocksMatchCasync(t *testing.T) {
	testkit.NeedTool(t, "casync", "casync", "the comparison with casync did not run")
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 3<<20)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	var text bytes.Buffer
	for text.Len() < 2<<20 {
		fmt.Fprintf(&text, "line %d of a text file with some words %x\n", text.Len(), r.Uint64())
	}
	inputs := map[string][]byte{"zeros": make([]byte, 2<<20), "random": random, "text": text.Bytes()}
	if _, err := tool.Find("mkfs.ext4", "e2fsprogs"); err == nil {
		// Not testkit.Ext4Image: without mkfs.ext4 only this input is left out, not the test.
		img, err := testkit.MakeExt4(filepath.Join(dir, "ext4"), testkit.Ext4Options{Size: "24M", Sources: []string{"/usr/share/i18n"}})
		testkit.Must(t, err)
		inputs["ext4"], _ = os.ReadFile(img)
	} else {
		t.Log("SKIPPING the ext4 input: mkfs.ext4 not found (install Debian package e2fsprogs)")
	}
	for name, data := range inputs {
		in := filepath.Join(dir, name+".bin")
		os.WriteFile(in, data, 0o644)
		for _, kib := range []int{4, 16, 64} {
			sizes := fmt.Sprintf("%d:%d:%d", kib*256, kib*1024, kib*4096)
			idx := filepath.Join(dir, fmt.Sprintf("%s-%d.caibx", name, kib))
			sh(t, dir, "casync", "make", "--chunk-size="+sizes, "--digest=sha512-256", "--store="+filepath.Join(dir, "store"), idx, in)
			ends, ids := readCaibx(t, idx)
			lines := strings.Split(strings.TrimSuffix(mustOtabake(t, "bundle", "blocks", "--chunker", fmt.Sprintf("casync-%d", kib), in), "\n"), "\n")
			if len(lines) != len(ends) {
				t.Fatalf("%s casync-%d: %d blocks, casync has %d", name, kib, len(lines), len(ends))
			}
			var prev uint64
			for i, l := range lines {
				want := fmt.Sprintf("%d %d %s", prev, ends[i]-prev, hex.EncodeToString(ids[i]))
				if l != want {
					t.Fatalf("%s casync-%d block %d: %q, casync %q", name, kib, i, l, want)
				}
				prev = ends[i]
			}
		}
	}
}

func TestBundleIndexAndDelta(t *testing.T) {
	dir := makeBundleDir(t, "")
	work := t.TempDir()
	out := filepath.Join(work, "b.rugixb")
	mustOtabake(t, "bundle", "create", dir, "-o", out)
	img := filepath.Join(dir, "payloads", "system.img")
	idx := filepath.Join(work, "casync-16_sha512-256.rugix-block-index")
	mustOtabake(t, "bundle", "index", img, "--chunker", "casync-16", "-o", idx)
	data, _ := os.ReadFile(idx)
	x, err := bundle.ParseBlockIndex(data)
	if err != nil || x.FileName() != filepath.Base(idx) {
		t.Fatalf("index: %v %v", x, err)
	}
	var lines int
	for _, l := range strings.Split(strings.TrimSpace(mustOtabake(t, "bundle", "blocks", "--chunker", "casync-16", img)), "\n") {
		f := strings.Fields(l)
		if hex.EncodeToString(x.Hashes[32*lines:32*lines+32]) != f[2] {
			t.Fatalf("index block %d differs from bundle blocks", lines)
		}
		lines++
	}
	if lines != x.Blocks() {
		t.Fatalf("index has %d blocks, bundle blocks printed %d", x.Blocks(), lines)
	}
	var d struct {
		Payloads []bundle.PayloadDelta
		Ratio    float64
	}
	json.Unmarshal([]byte(mustOtabake(t, "--json", "bundle", "delta", "estimate", out, "--index", idx)), &d)
	if d.Payloads[0].DownloadBlocks != 0 || !d.Payloads[0].Reusable || d.Payloads[1].Reusable || d.Ratio > 0.01 {
		t.Fatalf("delta against the same image: %+v", d)
	}
	other := filepath.Join(work, "fixed.idx")
	mustOtabake(t, "bundle", "index", img, "--chunker", "fixed-4", "-o", other)
	json.Unmarshal([]byte(mustOtabake(t, "--json", "bundle", "delta", "estimate", out, "--index", other)), &d)
	if d.Payloads[0].Reusable || d.Payloads[0].DownloadBlocks != d.Payloads[0].Blocks {
		t.Fatalf("delta with a non-matching chunker must download everything: %+v", d)
	}
}

// TestSignWithOpenSSL signs with openssl-made certificates and checks both directions of
// interoperability: openssl verifies our CMS, and we accept openssl's.
func TestSignWithOpenSSL(t *testing.T) {
	testkit.NeedTool(t, "openssl", "openssl", "the comparison with openssl did not run")
	dir := makeBundleDir(t, "")
	w := t.TempDir()
	out := filepath.Join(w, "b.rugixb")
	hash := strings.TrimSpace(mustOtabake(t, "bundle", "create", dir, "-o", out))
	os.WriteFile(filepath.Join(w, "signer.ext"), []byte("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"), 0o644)
	for _, who := range []string{"ca", "other"} {
		sh(t, w, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", who+".key", "-out", who+".pem", "-days", "2", "-subj", "/CN=Test "+who,
			"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
	}
	sh(t, w, "openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "signer.key", "-out", "signer.csr", "-subj", "/CN=Test Signer")
	sh(t, w, "openssl", "x509", "-req", "-in", "signer.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "signer.pem", "-days", "2", "-extfile", "signer.ext")

	signed := filepath.Join(w, "signed.rugixb")
	mustOtabake(t, "bundle", "sign", out, "--key", filepath.Join(w, "signer.key"), "--cert", filepath.Join(w, "signer.pem"), "-o", signed)
	mustOtabake(t, "bundle", "sign", signed, "--key", filepath.Join(w, "signer.key"), "--cert", filepath.Join(w, "signer.pem"))
	b, err := bundle.Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	sigs, bh := b.Signatures(), b.Hash()
	b.Close()
	if len(sigs) != 2 || bh != hash {
		t.Fatalf("signed twice: %d signatures, hash %s (want %s)", len(sigs), bh, hash)
	}
	os.WriteFile(filepath.Join(w, "sig.der"), sigs[0], 0o644)
	sh(t, w, "openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", "sig.der", "-CAfile", "ca.pem", "-out", "content.raw")
	mustOtabake(t, "bundle", "signed-metadata", out, "-o", filepath.Join(w, "md.raw"))
	content, _ := os.ReadFile(filepath.Join(w, "content.raw"))
	md, _ := os.ReadFile(filepath.Join(w, "md.raw"))
	if !bytes.Equal(content, md) || len(md) != 90 || !bytes.Contains(md, []byte(hash)) {
		t.Fatalf("openssl extracted %q, signed metadata is %q", content, md)
	}
	if v := mustOtabake(t, "bundle", "verify", signed, "--root-cert", filepath.Join(w, "ca.pem")); !strings.Contains(v, "signature 1: valid") {
		t.Fatalf("verify output:\n%s", v)
	}
	if _, _, err := otabake(t, "bundle", "verify", signed, "--root-cert", filepath.Join(w, "other.pem")); err == nil || !strings.Contains(err.Error(), "no valid signature") {
		t.Fatalf("verify against the wrong root: %v", err)
	}

	// A signature made by openssl cms -sign, as rugix-bundler signatures sign makes it.
	sh(t, w, "openssl", "cms", "-sign", "-in", "md.raw", "-signer", "signer.pem", "-inkey", "signer.key", "-out", "ossl.cms",
		"-outform", "DER", "-nosmimecap", "-nodetach", "-binary")
	osslSigned := filepath.Join(w, "ossl.rugixb")
	mustOtabake(t, "bundle", "add-signature", out, filepath.Join(w, "ossl.cms"), "-o", osslSigned)
	mustOtabake(t, "bundle", "verify", osslSigned, "--root-cert", filepath.Join(w, "ca.pem"), "--bundle-hash", hash)
	if insp := mustOtabake(t, "bundle", "inspect", osslSigned); !strings.Contains(insp, "CN=Test Signer") {
		t.Fatalf("inspect does not name the signer:\n%s", insp)
	}
}

// TestBundleCreateAddsBlockIndex: a slot payload without block-encoding gets casync-64 (and
// says so); --no-block-index keeps it out, and inspect and verify then warn.
func TestBundleCreateAddsBlockIndex(t *testing.T) {
	dir := makeBundleDir(t, "")
	toml := "update-type = \"full\"\n[[payloads]]\nfilename = \"system.img\"\ndelivery = { type = \"slot\", slot = \"system\" }\n" +
		"[[payloads]]\nfilename = \"post.sh\"\ndelivery = { type = \"execute\", handler = [\"/bin/sh\", \"-\"] }\n"
	os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), []byte(toml), 0o644)
	w := t.TempDir()
	for _, tc := range []struct {
		name        string
		args        []string
		wantChunker string // of payload 0; "" = none
		wantStderr  string
	}{
		{"default", nil, "casync-64", `added chunker = "casync-64"`},
		{"no-block-index", []string{"--no-block-index"}, "", "refuses to install it unless run with --insecure-allow-missing-block-index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(w, tc.name+".rugixb")
			_, stderr, err := otabake(t, append([]string{"bundle", "create", dir, "-o", out}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stderr, tc.wantStderr) {
				t.Fatalf("create stderr %q, want %q", stderr, tc.wantStderr)
			}
			var insp bundle.Inspection
			if err := json.Unmarshal([]byte(mustOtabake(t, "--json", "bundle", "inspect", out)), &insp); err != nil {
				t.Fatal(err)
			}
			p0, p1 := insp.Payloads[0], insp.Payloads[1]
			if p1.BlockEncoding != nil {
				t.Errorf("execute payload got a block encoding: %+v", p1.BlockEncoding)
			}
			human := mustOtabake(t, "bundle", "inspect", out)
			verify := mustOtabake(t, "bundle", "verify", out)
			var rep bundle.VerifyReport
			if err := json.Unmarshal([]byte(mustOtabake(t, "--json", "bundle", "verify", out)), &rep); err != nil {
				t.Fatal(err)
			}
			if tc.wantChunker == "" {
				if p0.BlockEncoding != nil || len(insp.Warnings) != 1 || len(rep.Warnings) != 1 ||
					!strings.Contains(human, "Warning:     payload 0") || !strings.Contains(verify, "warning: payload 0") ||
					!strings.Contains(insp.Warnings[0], "Rugix Ctrl >= 1.2 refuses") {
					t.Fatalf("no warning without a block index:\n%+v\n%s\n%s\n%+v", insp, human, verify, rep)
				}
				return
			}
			if p0.BlockEncoding == nil || p0.BlockEncoding.Chunker != tc.wantChunker || p0.BlockEncoding.HashAlgorithm != "sha512-256" ||
				p0.BlockEncoding.Blocks == 0 || len(insp.Warnings) != 0 || len(rep.Warnings) != 0 || strings.Contains(human, "Warning") {
				t.Fatalf("inspect: %+v\n%s", insp, human)
			}
			if insp.Manifest == nil || !strings.Contains(*insp.Manifest, `"block-encoding":{"chunker":"casync-64"}`) {
				t.Fatalf("manifest does not carry the added block encoding: %v", insp.Manifest)
			}
		})
	}
}

// TestInspectAppBundle inspects and verifies the hand-made 1.x app bundle with component
// metadata (internal/bundle/apps_test.go builds it).
func TestInspectAppBundle(t *testing.T) {
	const fixture = "../bundle/testdata/app-components.rugixb"
	var insp bundle.Inspection
	if err := json.Unmarshal([]byte(mustOtabake(t, "--json", "bundle", "inspect", fixture)), &insp); err != nil {
		t.Fatal(err)
	}
	if len(insp.Payloads) != 3 {
		t.Fatalf("payloads %+v", insp.Payloads)
	}
	p0, p1, p2 := insp.Payloads[0], insp.Payloads[1], insp.Payloads[2]
	if p0.Delivery != "app-file" || p0.App != "hello" || p0.Path != "bin/hello" || p0.Mode == nil || *p0.Mode != 0o755 ||
		p1.Delivery != "app-archive" || p1.App != "hello" || p2.Delivery != "slot" || p2.Slot != "x" {
		t.Fatalf("deliveries: %+v %+v %+v", p0, p1, p2)
	}
	c := insp.Components
	if c == nil || len(c.Files) != 2 || c.Files[0].Path != "system.toml" || c.Files[0].Text == nil ||
		!strings.Contains(*c.Files[0].Text, `name = "hello"`) || c.Files[1].Path != "hw/board.json" || c.Tags["BUNDLE_HEADER_COMPONENTS"] == "" {
		t.Fatalf("components: %+v", c)
	}
	human := mustOtabake(t, "bundle", "inspect", fixture)
	for _, want := range []string{`0: app-file(app="hello" path="bin/hello" mode=0755)`, `1: app-archive(app="hello")`, `2: slot="x"`, "Components:  2 files", "hw/board.json: 16 bytes"} {
		if !strings.Contains(human, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, human)
		}
	}
	if v := mustOtabake(t, "bundle", "verify", fixture, "--bundle-hash", insp.Hash); !strings.Contains(v, "OK "+insp.Hash+": 3 payloads") {
		t.Fatalf("verify: %s", v)
	}
}

// TestBundleDeltaCreate runs bundle delta create with its flags after the arguments, then
// applies the patch with bundle extract --source.
func TestBundleDeltaCreate(t *testing.T) {
	testkit.NeedTool(t, "xdelta3", "xdelta3", "the static delta command test did not run")
	oldDir, newDir := makeBundleDir(t, ", compression = { type = \"xz\" }"), makeBundleDir(t, ", compression = { type = \"xz\" }")
	img := filepath.Join(newDir, "payloads", "system.img")
	data, _ := os.ReadFile(img)
	copy(data[300<<10:], "release 2")
	os.WriteFile(img, data, 0o644)
	work := t.TempDir()
	oldB, newB, delta := filepath.Join(work, "old.rugixb"), filepath.Join(work, "new.rugixb"), filepath.Join(work, "delta.rugixb")
	mustOtabake(t, "bundle", "create", oldDir, "-o", oldB)
	mustOtabake(t, "bundle", "create", newDir, "-o", newB)
	var r bundle.DeltaResult
	if err := json.Unmarshal([]byte(mustOtabake(t, "bundle", "delta", "create", oldB, newB, "-o", delta, "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Payloads) != 1 || r.Payloads[0].Slot.New != "system" || r.Payloads[0].Filename != "system.img.xdelta" || r.Size >= r.NewSize/4 {
		t.Fatalf("delta create: %+v", r)
	}
	t.Logf("delta bundle %d bytes, full bundle %d bytes", r.Size, r.NewSize)
	mustOtabake(t, "bundle", "verify", delta)
	got := filepath.Join(work, "system.img")
	mustOtabake(t, "bundle", "extract", delta, "-p", "system", "--source", filepath.Join(oldDir, "payloads", "system.img"), "-o", got)
	if testkit.SHA256File(t, got) != testkit.SHA256File(t, img) {
		t.Fatal("extract --source does not give the new payload")
	}
	if _, _, err := otabake(t, "bundle", "delta", "create", oldB, newB, "-o", delta, "--slot", "boot"); err == nil || !strings.Contains(err.Error(), `no payload for slot "boot"`) {
		t.Fatalf("--slot boot: %v", err)
	}
	if _, _, err := otabake(t, "bundle", "delta", "create", oldB, "-o", delta); err == nil {
		t.Fatal("one bundle accepted")
	}
}
