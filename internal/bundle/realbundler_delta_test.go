package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestRealRugixBundlerDelta compares bundle delta create with `rugix-bundler delta` of the real
// rugix-bundler named by OTABAKE_RUGIX_BUNDLER (see TestRealRugixBundler) on full bundles that
// rugix-bundler made of two ext4 images differing in one file, with a system and a boot payload
// and the same manifest (rugix-bundler 0.8.15 takes the new bundle's manifest from the old one,
// crates/apps/rugix-bundler/src/main.rs, so only equal manifests give it the right one): the
// structure (payload entries with their delta encodings, payload block encodings, manifest) must
// be equal, and the bytes (with xz from liblzma, the cgo build, as TestRealRugixBundler); rugix-bundler must read
// otabake's delta bundle and extract its patches.
func TestRealRugixBundlerDelta(t *testing.T) {
	rb := os.Getenv("OTABAKE_RUGIX_BUNDLER")
	if rb == "" {
		t.Skip("SKIPPING the comparison with the real rugix-bundler delta: set OTABAKE_RUGIX_BUNDLER=/path/to/rugix-bundler")
	}
	oldImg, newImg := deltaImages(t)
	ctx := context.Background()
	w := t.TempDir()
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	full := func(name, img, version string) string {
		dir := filepath.Join(w, name)
		os.MkdirAll(filepath.Join(dir, "payloads"), 0o755)
		writeFileF(t, filepath.Join(dir, "payloads", "system.ext4"), readFileF(t, img))
		writeFileF(t, filepath.Join(dir, "payloads", "boot.vfat"), append(kernel(), version...))
		writeFileF(t, filepath.Join(dir, ManifestFile), []byte("update-type = \"full\"\n\n"+
			"[[payloads]]\nfilename = \"system.ext4\"\n[payloads.delivery]\ntype = \"slot\"\nslot = \"system\"\n[payloads.block-encoding]\nchunker = \"casync-64\"\ncompression = { type = \"xz\" }\n\n"+
			"[[payloads]]\nfilename = \"boot.vfat\"\n[payloads.delivery]\ntype = \"slot\"\nslot = \"boot\"\n[payloads.block-encoding]\nchunker = \"casync-64\"\ncompression = { type = \"xz\" }\n"))
		out := filepath.Join(w, name+".rugixb")
		run(rb, "--log-level", "off", "bundle", dir, out)
		return out
	}
	oldB, newB := full("old", oldImg, "1.0.0"), full("new", newImg, "1.0.1")

	for _, c := range []struct {
		name  string
		args  []string
		slots []DeltaSlot
		raw   bool
	}{
		{"default slots", nil, nil, false},
		{"system only, without compression", []string{"--slot", "system", "--without-compression"}, []DeltaSlot{{"system", "system"}}, true},
		{"boot against boot", []string{"--slot", "system", "--slot", "boot:boot"}, []DeltaSlot{{"system", "system"}, {"boot", "boot"}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			theirs, ours := filepath.Join(w, "theirs.rugixb"), filepath.Join(w, "ours.rugixb")
			run(rb, append(append([]string{"--log-level", "off", "delta"}, c.args...), oldB, newB, theirs)...)
			res, err := CreateDeltaFile(ctx, oldB, newB, ours, DeltaOptions{Slots: c.slots, WithoutCompression: c.raw})
			if err != nil {
				t.Fatal(err)
			}
			tb, err := Open(theirs)
			if err != nil {
				t.Fatalf("otabake reads rugix-bundler's delta bundle: %v", err)
			}
			defer tb.Close()
			ob, err := Open(ours)
			if err != nil {
				t.Fatal(err)
			}
			defer ob.Close()
			if _, err := tb.Verify(ctx, VerifyOptions{}); err != nil {
				t.Fatalf("otabake verify of rugix-bundler's delta bundle: %v", err)
			}
			// Structure: payload entries (delivery, delta encoding), block encodings, manifest.
			for i := range tb.Payloads() {
				te, oe := *tb.Payloads()[i].Entry, *ob.Payloads()[i].Entry
				te.HeaderHash, oe.HeaderHash, te.FileHash, oe.FileHash = nil, nil, nil, nil
				if !reflect.DeepEqual(te, oe) {
					a, _ := json.Marshal(te)
					b, _ := json.Marshal(oe)
					t.Errorf("payload %d entry: rugix-bundler %s, otabake %s", i, a, b)
				}
				tbe, obe := tb.Payloads()[i].Header.BlockEncoding, ob.Payloads()[i].Header.BlockEncoding
				if tbe.Chunker != obe.Chunker || tbe.HashAlgorithm != obe.HashAlgorithm || tbe.Deduplicated != obe.Deduplicated || (tbe.Compression == nil) != (obe.Compression == nil) {
					t.Errorf("payload %d block encoding: rugix-bundler %s %s dedup %t xz %t, otabake %s %s dedup %t xz %t", i,
						tbe.Chunker, tbe.HashAlgorithm, tbe.Deduplicated, tbe.Compression != nil, obe.Chunker, obe.HashAlgorithm, obe.Deduplicated, obe.Compression != nil)
				}
			}
			if len(tb.Payloads()) != len(ob.Payloads()) || *tb.Header().Manifest != *ob.Header().Manifest {
				t.Errorf("manifests differ:\nrugix-bundler %s\notabake       %s", *tb.Header().Manifest, *ob.Header().Manifest)
			}
			// The patches themselves: the file hashes of the payloads (the xdelta3 output).
			for i := range tb.Payloads() {
				if !bytes.Equal(tb.Payloads()[i].Entry.FileHash, ob.Payloads()[i].Entry.FileHash) {
					t.Errorf("payload %d: the patches differ", i)
				}
			}
			same := bytes.Equal(readFileF(t, theirs), readFileF(t, ours))
			t.Logf("%s: rugix-bundler %d bytes %s; otabake %d bytes %s; bytes identical: %t", c.name, tb.Size(), tb.Hash(), res.Size, res.Hash, same)
			if !same {
				t.Errorf("the delta bundles differ in their bytes: %s %s", theirs, ours)
			}
			// rugix-bundler reads otabake's delta bundle and extracts its patch.
			if out := run(rb, "--log-level", "off", "inspect", "--verify-bundle", res.Hash, ours); !strings.Contains(out, `slot="system"`) {
				t.Fatalf("rugix-bundler inspect:\n%s", out)
			}
			patch := filepath.Join(w, "patch")
			run(rb, "--log-level", "off", "extract", "--verify-bundle", res.Hash, ours, "0", patch)
			decoded := filepath.Join(w, "decoded")
			os.Remove(decoded)
			run("xdelta3", "-d", "-s", oldImg, patch, decoded)
			if !bytes.Equal(readFileF(t, decoded), readFileF(t, newImg)) {
				t.Fatal("rugix-bundler's extract of otabake's system patch does not decode to the new image")
			}
		})
	}
}
