package raucb

import (
	"bytes"
	"context"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// TestHashTreeMatchesVeritysetup checks the Go hash tree against cryptsetup's veritysetup byte
// for byte, at the level boundaries (one level up to 128 data blocks, two up to 128², three
// beyond).
func TestHashTreeMatchesVeritysetup(t *testing.T) {
	veritysetup := testkit.NeedTool(t, "veritysetup", "cryptsetup-bin", "the hash tree was not compared with veritysetup")
	salt := bytes.Repeat([]byte{0x5a, 0xc3}, 16)
	for _, blocks := range []uint64{2, 3, 128, 129, 128*128 + 1} {
		t.Run(strconv.FormatUint(blocks, 10), func(t *testing.T) {
			dir := t.TempDir()
			data := make([]byte, blocks*verityBlockSize)
			rng := rand.NewChaCha8([32]byte{byte(blocks)})
			_, _ = rng.Read(data)

			mine := filepath.Join(dir, "mine")
			testkit.Must(t, os.WriteFile(mine, data, 0o644))
			f, err := os.OpenFile(mine, os.O_RDWR, 0)
			testkit.Must(t, err)
			root, size, err := appendHashTree(context.Background(), f, blocks, salt)
			f.Close()
			testkit.Must(t, err)

			theirs := filepath.Join(dir, "theirs")
			testkit.Must(t, os.WriteFile(theirs, data, 0o644))
			out := testkit.Run(t, veritysetup, "format", "--no-superblock",
				"--hash-offset="+strconv.Itoa(len(data)), "--data-blocks="+strconv.FormatUint(blocks, 10),
				"--salt="+hex.EncodeToString(salt), theirs, theirs)
			m := regexp.MustCompile(`Root hash:\s+([0-9a-f]{64})`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no root hash in veritysetup's output:\n%s", out)
			}
			if got := hex.EncodeToString(root[:]); got != m[1] {
				t.Errorf("root hash %s, veritysetup %s", got, m[1])
			}
			a, b := testkit.ReadFile(t, mine), testkit.ReadFile(t, theirs)
			if a != b {
				t.Errorf("hash tree differs from veritysetup's: %d and %d bytes", len(a), len(b))
			}
			if want := uint64(len(b) - len(data)); size != want {
				t.Errorf("tree size %d, veritysetup wrote %d", size, want)
			}
		})
	}
}

func TestVerityLevels(t *testing.T) {
	for _, c := range []struct {
		blocks, total uint64
		levels        int
	}{
		{1, 1, 0},
		{2, 3, 1},
		{128, 129, 1},
		{129, 129 + 2 + 1, 2},
		{128 * 128, 128*128 + 128 + 1, 2},
		{128*128 + 1, 128*128 + 1 + 129 + 2 + 1, 3},
	} {
		pos, _, total, err := verityLevels(c.blocks)
		testkit.Must(t, err)
		if len(pos) != c.levels || total != c.total {
			t.Errorf("%d blocks: %d levels, %d blocks in all; want %d, %d", c.blocks, len(pos), total, c.levels, c.total)
		}
	}
}
