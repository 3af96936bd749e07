package chunker

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
	"github.com/otabake/otabake/internal/tool"
)

// caibx constants from casync's caformat.h (CA_FORMAT_INDEX, CA_FORMAT_TABLE,
// CA_FORMAT_TABLE_TAIL_MARKER, CA_FORMAT_SHA512_256).
const (
	caFormatIndex     = 0x96824d9c7b129ff9
	caFormatTable     = 0xe75b9e112f17417d
	caTableTailMarker = 0x4b4f050e5549ecd1
	caFlagSHA512_256  = 0x2000000000000000
	caIndexHeaderSize = 48
	caTableHeaderSize = 16
	caTableItemSize   = 40
	caTableTailSize   = 40
)

// caibxChunk is one entry of a casync blob index: the chunk ends at End (exclusive) in the blob.
type caibxChunk struct {
	End uint64
	ID  [32]byte
}

type caibx struct {
	Flags         uint64
	Min, Avg, Max uint64
	Chunks        []caibxChunk
}

// parseCaibx reads a casync blob index: the FormatIndex header (size, type, feature flags,
// min/avg/max chunk size), then a FormatTable of unknown length (size field all ones) whose items
// are the chunk end offset and chunk id, closed by a tail whose first two words are zero.
func parseCaibx(b []byte) (*caibx, error) {
	le := binary.LittleEndian
	if len(b) < caIndexHeaderSize+caTableHeaderSize+caTableTailSize {
		return nil, fmt.Errorf("caibx: %d bytes, too short", len(b))
	}
	if size, typ := le.Uint64(b[0:]), le.Uint64(b[8:]); size != caIndexHeaderSize || typ != caFormatIndex {
		return nil, fmt.Errorf("caibx: index header size %d type %#x, want %d %#x", size, typ, caIndexHeaderSize, uint64(caFormatIndex))
	}
	idx := &caibx{Flags: le.Uint64(b[16:]), Min: le.Uint64(b[24:]), Avg: le.Uint64(b[32:]), Max: le.Uint64(b[40:])}
	t := b[caIndexHeaderSize:]
	if size, typ := le.Uint64(t[0:]), le.Uint64(t[8:]); size != math.MaxUint64 || typ != caFormatTable {
		return nil, fmt.Errorf("caibx: table header size %#x type %#x at offset %d", size, typ, caIndexHeaderSize)
	}
	t = t[caTableHeaderSize:]
	pos := caIndexHeaderSize + caTableHeaderSize
	var prev uint64
	for {
		if len(t) < caTableItemSize {
			return nil, fmt.Errorf("caibx: truncated table at offset %d", pos)
		}
		end := le.Uint64(t)
		if end == 0 {
			break
		}
		if end <= prev {
			return nil, fmt.Errorf("caibx: chunk end %d at offset %d does not increase (previous %d)", end, pos, prev)
		}
		var c caibxChunk
		c.End = end
		copy(c.ID[:], t[8:40])
		idx.Chunks = append(idx.Chunks, c)
		prev = end
		t, pos = t[caTableItemSize:], pos+caTableItemSize
	}
	if len(t) != caTableTailSize {
		return nil, fmt.Errorf("caibx: %d bytes after the table at offset %d, want a %d-byte tail", len(t), pos, caTableTailSize)
	}
	tableSize := uint64(caTableHeaderSize + caTableItemSize*len(idx.Chunks) + caTableTailSize)
	if le.Uint64(t[8:]) != 0 || le.Uint64(t[16:]) != caIndexHeaderSize || le.Uint64(t[24:]) != tableSize || le.Uint64(t[32:]) != caTableTailMarker {
		return nil, fmt.Errorf("caibx: bad table tail % x at offset %d", t, pos)
	}
	return idx, nil
}

// ext4Input returns a small ext4 image of files from /usr/share, or nil (with a loud log line)
// when mkfs.ext4 is missing: the other inputs still run.
func ext4Input(t *testing.T, dir string) []byte {
	t.Helper()
	if _, err := tool.Find("mkfs.ext4", "e2fsprogs"); err != nil {
		t.Log("!!! mkfs.ext4 not found (Debian package e2fsprogs): skipping the ext4 input of the casync oracle test")
		return nil
	}
	img := testkit.Ext4Image(t, filepath.Join(dir, "ext4"), testkit.Ext4Options{
		Size: "12M", BlockSize: 4096, MkfsArgs: []string{"-E", "root_owner=0:0"},
		Sources: []string{"/usr/share"}, Budget: 4 << 20,
	})
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestCasyncOracle compares boundaries and sha512-256 ids with Debian's casync, the reference
// implementation Rugix's chunker is compatible with (specs/rugix-bundle.md §8).
func TestCasyncOracle(t *testing.T) {
	bin := testkit.NeedTool(t, "casync", "casync", "the casync oracle test did NOT run")
	dir := t.TempDir()
	inputs := []struct {
		name string
		data []byte
	}{
		{"zeros", make([]byte, 3<<20+1234)},
		{"random", randomBytes(40, 4<<20+77)},
		{"text", textBytes(41, 3<<20)},
		{"mixed", slices.Concat(randomBytes(42, 1<<20), make([]byte, 700_000), textBytes(43, 1<<20), randomBytes(42, 1<<20))},
		{"ext4", ext4Input(t, dir)},
	}
	specs := []Spec{{Casync, 16}, {Casync, 64}, {Casync, 256}}
	for _, in := range inputs {
		if in.data == nil {
			continue
		}
		path := filepath.Join(dir, in.name+".bin")
		if err := os.WriteFile(path, in.data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, spec := range specs {
			t.Run(in.name+"/"+spec.String(), func(t *testing.T) {
				index := filepath.Join(dir, in.name+"-"+spec.String()+".caibx")
				sizes := fmt.Sprintf("%d:%d:%d", spec.MinSize(), spec.AvgSize(), spec.MaxSize())
				cmd := exec.Command(bin, "make", "--store="+filepath.Join(dir, "store.castr"), "--chunk-size="+sizes, "--digest=sha512-256", index, path)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
				}
				raw, err := os.ReadFile(index)
				if err != nil {
					t.Fatal(err)
				}
				want, err := parseCaibx(raw)
				if err != nil {
					t.Fatal(err)
				}
				if want.Min != uint64(spec.MinSize()) || want.Avg != uint64(spec.AvgSize()) || want.Max != uint64(spec.MaxSize()) {
					t.Fatalf("casync used sizes %d:%d:%d, want %s", want.Min, want.Avg, want.Max, sizes)
				}
				if want.Flags&caFlagSHA512_256 == 0 {
					t.Fatalf("casync index flags %#x lack sha512-256", want.Flags)
				}

				// HashBlocks with crypto/sha512, and the AVX-512 eight-lane SHA-512/256 where the
				// CPU has it, both with the segments cut in two parallel parts.
				for _, run := range []struct {
					name string
					hash func(fn func(BlockSum) error) error
				}{
					{"HashBlocks", func(fn func(BlockSum) error) error {
						return HashBlocks(context.Background(), spec, bytes.NewReader(in.data), sha512.New512_256, 2, fn)
					}},
					{"HashBlocksSHA512_256", func(fn func(BlockSum) error) error {
						return HashBlocksSHA512_256(context.Background(), spec, bytes.NewReader(in.data), 2, fn)
					}},
				} {
					var got []caibxChunk
					err = run.hash(func(b BlockSum) error {
						c := caibxChunk{End: uint64(b.Offset + b.Size)}
						copy(c.ID[:], b.Sum)
						got = append(got, c)
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					for i := range min(len(got), len(want.Chunks)) {
						if got[i] != want.Chunks[i] {
							t.Fatalf("%s: chunk %d: ours ends at %d id %x, casync's ends at %d id %x", run.name, i, got[i].End, got[i].ID, want.Chunks[i].End, want.Chunks[i].ID)
						}
					}
					if len(got) != len(want.Chunks) {
						t.Fatalf("%s: %d chunks, casync has %d", run.name, len(got), len(want.Chunks))
					}
				}
				// Streaming front end too, fed in odd read sizes.
				c := New(spec, &randomReads{bytes.NewReader(in.data), rand.New(rand.NewPCG(44, 44)), 9999})
				for i := 0; ; i++ {
					b, err := c.Next()
					if err == io.EOF {
						if i != len(want.Chunks) {
							t.Fatalf("Next: %d chunks, casync has %d", i, len(want.Chunks))
						}
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					if i >= len(want.Chunks) || uint64(b.Offset)+uint64(len(b.Data)) != want.Chunks[i].End {
						t.Fatalf("Next: chunk %d at %d+%d differs from casync", i, b.Offset, len(b.Data))
					}
				}
				t.Logf("%d chunks agree", len(want.Chunks))
			})
		}
	}
}

func TestParseCaibxRejects(t *testing.T) {
	good := make([]byte, 0, 200)
	le := binary.LittleEndian
	good = le.AppendUint64(good, caIndexHeaderSize)
	good = le.AppendUint64(good, caFormatIndex)
	good = le.AppendUint64(good, caFlagSHA512_256)
	good = le.AppendUint64(good, 1)
	good = le.AppendUint64(good, 2)
	good = le.AppendUint64(good, 3)
	good = le.AppendUint64(good, math.MaxUint64)
	good = le.AppendUint64(good, caFormatTable)
	good = le.AppendUint64(good, 10)
	good = append(good, make([]byte, 32)...)
	good = le.AppendUint64(good, 0)
	good = le.AppendUint64(good, 0)
	good = le.AppendUint64(good, caIndexHeaderSize)
	good = le.AppendUint64(good, caTableHeaderSize+caTableItemSize+caTableTailSize)
	good = le.AppendUint64(good, caTableTailMarker)
	if idx, err := parseCaibx(good); err != nil || len(idx.Chunks) != 1 || idx.Chunks[0].End != 10 {
		t.Fatalf("parseCaibx(good) = %+v, %v", idx, err)
	}
	for _, cut := range []int{0, 47, 64, 100, len(good) - 1} {
		if _, err := parseCaibx(good[:cut]); err == nil {
			t.Errorf("parseCaibx accepted %d truncated bytes", cut)
		}
	}
	bad := slices.Clone(good)
	bad[len(bad)-1] ^= 1
	if _, err := parseCaibx(bad); err == nil {
		t.Error("parseCaibx accepted a bad tail marker")
	}
}
