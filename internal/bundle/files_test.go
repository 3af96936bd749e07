package bundle

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileOperations covers what the bundle commands call: the header hash check shared by
// Verify and ExtractFile, payload selection, inspection statistics and delta totals.
func TestFileOperations(t *testing.T) {
	ctx := context.Background()
	path, res := smallBundle(t, &BlockEncoding{Chunker: "casync-16", Deduplicate: true})
	dir := t.TempDir()
	wrong := "sha512-256:" + strings.Repeat("0", 64)

	// One header hash check: Verify and ExtractFile refuse a wrong hash with the same error.
	_, verr := VerifyFile(ctx, path, VerifyOptions{BundleHash: wrong})
	_, _, xerr := ExtractFile(ctx, path, filepath.Join(dir, "x"), ExtractFileOptions{Payload: "system", BundleHash: wrong})
	if !errors.Is(verr, ErrVerification) || !errors.Is(xerr, ErrVerification) || verr.Error() != xerr.Error() ||
		!strings.Contains(xerr.Error(), "invalid header hash") {
		t.Fatalf("wrong hash: verify %v, extract %v", verr, xerr)
	}

	hashFile := filepath.Join(dir, "b.rugixb-hash")
	h, err := WriteHashFile(path, hashFile)
	if err != nil || h != res.Hash || string(readFileF(t, hashFile)) != res.Hash {
		t.Fatalf("WriteHashFile: %q %v, want %q", h, err, res.Hash)
	}
	if got, err := ReadExpectedHash("@" + hashFile); err != nil || got != res.Hash {
		t.Fatalf("ReadExpectedHash(@file) = %q, %v", got, err)
	}
	rep, err := VerifyFile(ctx, path, VerifyOptions{BundleHash: res.Hash})
	if err != nil || !rep.HashChecked {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	blocks, n := rep.Totals()
	if blocks == 0 || n != 600<<10 {
		t.Fatalf("totals: %d blocks, %d bytes", blocks, n)
	}

	for _, sel := range []string{"0", "system"} {
		out := filepath.Join(dir, "extracted-"+sel)
		i, st, err := ExtractFile(ctx, path, out, ExtractFileOptions{Payload: sel, BundleHash: res.Hash})
		if err != nil || i != 0 || st.FileSize != 600<<10 || !bytes.Equal(readFileF(t, out), testData(600<<10, 7)) {
			t.Fatalf("extract %s: %d %+v %v", sel, i, st, err)
		}
	}
	for _, sel := range []string{"1", "-1", "boot"} {
		if _, _, err := ExtractFile(ctx, path, filepath.Join(dir, "y"), ExtractFileOptions{Payload: sel}); err == nil {
			t.Errorf("extract payload %q succeeded", sel)
		}
	}

	insp, err := InspectFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	be := insp.Payloads[0].BlockEncoding
	if insp.Hash != res.Hash || be == nil || be.Error != "" || be.UniqueBlocks == 0 || be.UniqueBlocks >= be.Blocks ||
		be.DedupRatio != float64(be.UniqueBlocks)/float64(be.Blocks) || insp.Payloads[0].Describe != `slot="system"` {
		t.Fatalf("inspect: %+v %+v", insp, be)
	}

	idx := filepath.Join(dir, "casync-16_sha512-256.rugix-block-index")
	if _, err := WriteBlockIndexFile(ctx, filepath.Join(filepath.Dir(path), "system.img"), idx, mustChunker(t, "casync-16"), SHA512_256, 0); err != nil {
		t.Fatal(err)
	}
	d, err := DeltaFile(path, []string{idx})
	if err != nil {
		t.Fatal(err)
	}
	overhead := d.BundleSize - insp.Payloads[0].DataSize
	if len(d.Payloads) != 1 || d.Payloads[0].DownloadBytes != 0 || d.DownloadBytes != overhead ||
		d.Ratio != float64(overhead)/float64(d.BundleSize) {
		t.Fatalf("delta against the same image: %+v", d)
	}
	full, err := DeltaFile(path, nil)
	if err != nil || full.DownloadBytes != full.BundleSize || full.Ratio != 1 {
		t.Fatalf("delta without indices: %+v %v", full, err)
	}
}
