package bundle

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/testkit"
)

// deltaImages makes two ext4 images of the same tree that differ in one file (etc/version),
// with the same UUID and hash seed, as two releases of one system are. Both hold the kernel
// (boot/vmlinuz) that the boot payload carries too, as real systems do.
func deltaImages(t *testing.T) (oldImg, newImg string) {
	t.Helper()
	testkit.NeedTool(t, "xdelta3", "xdelta3", "the static delta tests did not run")
	w := t.TempDir()
	var imgs [2]string
	for k, version := range []string{"1.0.0\n", "1.0.1\n"} {
		dir := filepath.Join(w, []string{"old", "new"}[k])
		etc, boot := filepath.Join(dir, "src", "etc"), filepath.Join(dir, "src", "boot")
		os.MkdirAll(etc, 0o755)
		os.MkdirAll(boot, 0o755)
		writeFileF(t, filepath.Join(etc, "version"), []byte(version))
		writeFileF(t, filepath.Join(etc, "data.bin"), testData(2<<20, 3))
		writeFileF(t, filepath.Join(boot, "vmlinuz"), kernel())
		imgs[k] = testkit.Ext4Image(t, dir, testkit.Ext4Options{
			Size: "32M", BlockSize: 4096, Budget: 16 << 20,
			MkfsArgs: []string{"-U", "2f3c4e5a-1111-2222-3333-444455556666", "-E", "root_owner=0:0,hash_seed=6d4e7f10-2222-3333-4444-555566667777"},
			Sources:  []string{boot, etc, "/usr/share/perl", "/usr/share/i18n"},
		})
	}
	return imgs[0], imgs[1]
}

func kernel() []byte { return testData(1<<20, 9) }

// fullBundle writes a release's full bundle: system (the image, casync-64, xz), boot (the
// kernel and the release's version) and an execute payload that the delta passes through.
func fullBundle(t *testing.T, dir, img, version string) string {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	boot := writeFile(t, dir, "boot.vfat", append(kernel(), version...))
	hook := writeFile(t, dir, "hook.sh", []byte("#!/bin/sh\necho hook\n"))
	out := filepath.Join(dir, "full.rugixb")
	enc := func() *BlockEncoding { return &BlockEncoding{Chunker: "casync-64", Compression: &Compression{}} }
	_, err := Create(context.Background(), out, Spec{Payloads: []Payload{
		{Slot: "system", Path: img, Filename: "system.ext4", BlockEncoding: enc()},
		{Slot: "boot", Path: boot, BlockEncoding: enc()},
		{Handler: []string{"/bin/sh"}, Path: hook},
	}}, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := SHA512_256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return Digest{SHA512_256, h.Sum(nil)}.String()
}

// TestDeltaCreate makes full bundles of two ext4 images differing in one file and a static
// delta bundle from them, and checks it the way a device and rugix-bundler see it.
func TestDeltaCreate(t *testing.T) {
	oldImg, newImg := deltaImages(t)
	ctx := context.Background()
	w := t.TempDir()
	oldFull := fullBundle(t, filepath.Join(w, "old"), oldImg, "1.0.0")
	newFull := fullBundle(t, filepath.Join(w, "new"), newImg, "1.0.1")
	oldBoot, newBoot := filepath.Join(w, "old", "boot.vfat"), filepath.Join(w, "new", "boot.vfat")
	pki := newPKI(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	out := filepath.Join(w, "delta.rugixb")
	res, err := CreateDeltaFile(ctx, oldFull, newFull, out, DeltaOptions{Signer: pki.signer})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(newImg)
	t.Logf("raw system image %d bytes; full bundle %d bytes; delta bundle %d bytes (%.4f of the full bundle, %.5f of raw)",
		st.Size(), res.NewSize, res.Size, float64(res.Size)/float64(res.NewSize), float64(res.Size)/float64(st.Size()))
	for _, p := range res.Payloads {
		t.Logf("  %s: payload %d %s: old %d, new %d bytes -> xdelta3 patch %d bytes, stored %d bytes", p.Slot, p.Payload, p.Filename, p.OldSize, p.NewSize, p.PatchSize, p.DataSize)
	}
	if res.Size*10 > res.NewSize {
		t.Errorf("delta bundle of %d bytes is not much smaller than the full bundle of %d bytes", res.Size, res.NewSize)
	}
	if res.Signatures != 1 {
		t.Errorf("signatures: %d, want 1", res.Signatures)
	}

	// Structure: rugix-bundler delta's (crates/apps/rugix-bundler/src/main.rs).
	b, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Hash() != res.Hash {
		t.Fatalf("hash %s, result says %s", b.Hash(), res.Hash)
	}
	wantDelta := map[string]struct{ input, original, file string }{
		"system": {fileDigest(t, oldImg), fileDigest(t, newImg), "system.ext4.xdelta"},
		"boot":   {fileDigest(t, oldImg), fileDigest(t, newBoot), "boot.vfat.xdelta"}, // boot:system
	}
	if len(b.Payloads()) != 3 {
		t.Fatalf("%d payloads, want 3", len(b.Payloads()))
	}
	for _, p := range b.Payloads() {
		want, isDelta := wantDelta[p.Slot()]
		d := p.Entry.DeltaEncoding
		if !isDelta {
			if d != nil || p.Entry.TypeExecute == nil {
				t.Errorf("payload %d: want the execute payload unchanged, got %+v", p.Index, p.Entry)
			}
			continue
		}
		if d == nil || d.Format != "xdelta" || len(d.Inputs) != 1 || len(d.Inputs[0].Hashes) != 1 || d.Inputs[0].Hashes[0] != want.input || d.OriginalHash != want.original {
			t.Errorf("payload %d (%s): delta encoding %+v, want input %s, original %s", p.Index, p.Slot(), d, want.input, want.original)
		}
		be := p.Header.BlockEncoding
		if be == nil || be.Chunker != "fixed-256" || be.Compression == nil || *be.Compression != "xz" || be.Deduplicated {
			t.Errorf("payload %d (%s): block encoding %+v, want fixed-256, xz, not deduplicated", p.Index, p.Slot(), be)
		}
	}
	m := *b.Header().Manifest
	for _, s := range []string{`"filename":"system.ext4.xdelta","block-encoding":{"chunker":"fixed-256","compression":{"type":"xz"}},"delta-encoding":{"inputs":[{"hashes":["` + wantDelta["system"].input + `"]}],"format":"xdelta","original-hash":"` + wantDelta["system"].original + `"}`,
		`"filename":"hook.sh"}`} {
		if !strings.Contains(m, s) {
			t.Errorf("manifest %s\nlacks %s", m, s)
		}
	}

	// bundle verify: the signature, every block of every patch.
	if _, err := VerifyFile(ctx, out, VerifyOptions{Roots: pki.pool, BundleHash: res.Hash}); err != nil {
		t.Fatalf("verify: %v", err)
	}

	// Extract gives the patch, and xdelta3 -d -s OLD_PAYLOAD decodes it to the new payload.
	for _, c := range []struct{ payload, source, want string }{
		{"system", oldImg, newImg},
		{"boot", oldImg, newBoot},
	} {
		patch := filepath.Join(w, c.payload+".xdelta")
		if _, _, err := ExtractFile(ctx, out, patch, ExtractFileOptions{Payload: c.payload}); err != nil {
			t.Fatal(err)
		}
		decoded := filepath.Join(w, c.payload+".xdelta3-d")
		testkit.Run(t, "xdelta3", "-d", "-s", c.source, patch, decoded)
		if testkit.SHA256File(t, decoded) != testkit.SHA256File(t, c.want) {
			t.Errorf("%s: xdelta3 -d -s %s does not give the new payload", c.payload, c.source)
		}
		// The extract path with the old payload as source applies the patch itself.
		applied := filepath.Join(w, c.payload+".applied")
		st, err := func() (*PayloadStats, error) {
			_, st, err := ExtractFile(ctx, out, applied, ExtractFileOptions{Payload: c.payload, Source: c.source})
			return st, err
		}()
		if err != nil {
			t.Fatal(err)
		}
		if testkit.SHA256File(t, applied) != testkit.SHA256File(t, c.want) || st.FileSize != fileSize(t, c.want) {
			t.Errorf("%s: extract --source does not give the new payload (%d bytes)", c.payload, st.FileSize)
		}
	}

	// A source that is not the patch's input is refused before anything is written.
	for _, c := range []struct{ name, payload, source string }{
		{"new image as source", "system", newImg},
		{"old boot as source", "boot", oldBoot},
	} {
		t.Run("refused/"+c.name, func(t *testing.T) {
			dst := filepath.Join(w, "refused-"+c.payload+".img")
			_, _, err := ExtractFile(ctx, out, dst, ExtractFileOptions{Payload: c.payload, Source: c.source})
			if !errors.Is(err, ErrDeltaInput) {
				t.Fatalf("err = %v, want ErrDeltaInput", err)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Fatalf("%s was written", dst)
			}
			if ents, _ := filepath.Glob(filepath.Join(w, ".*")); len(ents) != 0 {
				t.Fatalf("temporary files left: %v", ents)
			}
		})
	}
	if _, _, err := ExtractFile(ctx, out, filepath.Join(w, "x"), ExtractFileOptions{Payload: "2", Source: oldImg}); err == nil {
		t.Error("a source for a payload that is no static delta was accepted")
	}

	// Refusals of create, all before the output exists.
	for _, c := range []struct {
		name     string
		old, new string
		slots    []DeltaSlot
		want     string
	}{
		{"missing new slot", oldFull, newFull, []DeltaSlot{{New: "data", Old: "system"}}, `new bundle has no payload for slot "data"`},
		{"missing old slot", oldFull, newFull, []DeltaSlot{{New: "system", Old: "rootfs"}}, `old bundle has no payload for slot "rootfs"`},
		{"slot twice", oldFull, newFull, []DeltaSlot{{New: "system", Old: "system"}, {New: "system", Old: "boot"}}, "patched twice"},
		{"delta of a delta", oldFull, out, nil, "already a static delta"},
		{"delta against a delta", out, newFull, []DeltaSlot{{New: "system", Old: "system"}}, "is a static delta"},
	} {
		t.Run("create refuses/"+c.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "out.rugixb")
			_, err := CreateDeltaFile(ctx, c.old, c.new, dst, DeltaOptions{Slots: c.slots})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Fatalf("%s was written", dst)
			}
		})
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestParseDeltaSlot(t *testing.T) {
	for _, c := range []struct {
		in   string
		want DeltaSlot
		err  bool
	}{
		{"system", DeltaSlot{"system", "system"}, false},
		{"boot:system", DeltaSlot{"boot", "system"}, false},
		{"", DeltaSlot{}, true},
		{":system", DeltaSlot{}, true},
		{"boot:", DeltaSlot{}, true},
		{"a:b:c", DeltaSlot{}, true},
	} {
		got, err := ParseDeltaSlot(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseDeltaSlot(%q) = %v, %v", c.in, got, err)
		}
		if err == nil && got.String() != strings.TrimSuffix(c.in, ":system")+map[bool]string{true: ":system"}[got.New != got.Old] {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}
