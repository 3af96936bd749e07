package image

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBenchImage is the driver of scripts/bench/image.sh (just bench-image). It runs only when
// OTABAKE_BENCH_ROOTFS names a rootfs directory: it builds efi-grub into OTABAKE_BENCH_OUT
// without compression and writes the time per stage and the layout to bench.json there, so
// the script can build the same layout from the same partition images with genimage.
func TestBenchImage(t *testing.T) {
	rootfs, out := os.Getenv("OTABAKE_BENCH_ROOTFS"), os.Getenv("OTABAKE_BENCH_OUT")
	if rootfs == "" || out == "" {
		t.Skip("benchmark driver: set OTABAKE_BENCH_ROOTFS and OTABAKE_BENCH_OUT (see scripts/bench/image.sh)")
	}
	ctx := context.Background()
	stages := map[string]float64{}
	var order []string
	clock := time.Now()
	lap := func(name string) {
		stages[name] = time.Since(clock).Seconds()
		order = append(order, name)
		clock = time.Now()
	}
	tgt, err := TargetByName(TargetEFIGrub, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	size, err := TreeSize(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := Plan(tgt, Sizes{}, size)
	if err != nil {
		t.Fatal(err)
	}
	ids := DeriveIdentifiers("bench", "bench@1")
	lap("measure+plan")
	in := Input{Target: tgt, Layout: layout, IDs: ids, RootfsDir: rootfs, WorkDir: filepath.Join(out, "work"), SourceDateEpoch: time.Unix(1700000000, 0)}
	in.Progress = func(stage string) {
		switch stage {
		case "config":
			lap("stage-boot-files")
		case "boot":
			lap("config-fat")
		case "system":
			lap("boot-ext4")
		}
	}
	parts, err := BuildPartitions(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	lap("system-ext4")
	img := filepath.Join(out, "system.img")
	if err := Assemble(ctx, layout, parts, img, ids); err != nil {
		t.Fatal(err)
	}
	lap("assemble")
	if err := WriteBmap(img, img+".bmap"); err != nil {
		t.Fatal(err)
	}
	lap("bmap")
	doc := map[string]any{"rootfsBytes": size, "stages": stages, "order": order, "layout": layout,
		"parts": parts, "diskGUID": ids.DiskGUID.Upper(), "image": img}
	data, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "bench.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}
