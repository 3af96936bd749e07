package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/otabake/otabake/internal/atomicfile"
)

// BmapBlockSize is the block size of the bmap files otabake writes, the one bmaptool uses.
const BmapBlockSize = 4096

// WriteBmap writes a bmaptool block map (format version 2.0, SHA-256) for the image file img
// to out. Mapped blocks are those overlapping a data range reported by SEEK_DATA/SEEK_HOLE;
// each range carries the SHA-256 of its bytes, and the file carries its own checksum computed
// with that field set to zeros, which is what "bmaptool copy" verifies before writing.
func WriteBmap(img, out string) error {
	f, err := os.Open(img)
	if err != nil {
		return fmt.Errorf("bmap: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("bmap %s: %w", img, err)
	}
	size := st.Size()
	data, err := DataRanges(f, size)
	if err != nil {
		return fmt.Errorf("bmap %s: %w", img, err)
	}
	// Turn byte ranges into merged inclusive block ranges.
	type blocks struct{ first, last int64 }
	var ranges []blocks
	for _, r := range data {
		b := blocks{r.Start / BmapBlockSize, (r.End - 1) / BmapBlockSize}
		if n := len(ranges); n > 0 && b.first <= ranges[n-1].last+1 {
			ranges[n-1].last = max(ranges[n-1].last, b.last)
			continue
		}
		ranges = append(ranges, b)
	}
	var mapped int64
	for _, r := range ranges {
		mapped += r.last - r.first + 1
	}
	total := (size + BmapBlockSize - 1) / BmapBlockSize

	const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
	var b bytes.Buffer
	fmt.Fprintf(&b, "<?xml version=\"1.0\" ?>\n<!-- Block map written by otabake: the blocks listed under BlockMap hold\n     data, all others are zero. -->\n")
	fmt.Fprintf(&b, "<bmap version=\"2.0\">\n")
	fmt.Fprintf(&b, "    <ImageSize> %d </ImageSize>\n", size)
	fmt.Fprintf(&b, "    <BlockSize> %d </BlockSize>\n", BmapBlockSize)
	fmt.Fprintf(&b, "    <BlocksCount> %d </BlocksCount>\n", total)
	fmt.Fprintf(&b, "    <MappedBlocksCount> %d </MappedBlocksCount>\n", mapped)
	fmt.Fprintf(&b, "    <ChecksumType> sha256 </ChecksumType>\n")
	fmt.Fprintf(&b, "    <BmapFileChecksum> ")
	sumAt := b.Len()
	fmt.Fprintf(&b, "%s </BmapFileChecksum>\n", zeros)
	fmt.Fprintf(&b, "    <BlockMap>\n")
	buf := make([]byte, 1<<20)
	for _, r := range ranges {
		h := sha256.New()
		start := r.first * BmapBlockSize
		end := min((r.last+1)*BmapBlockSize, size)
		if _, err := io.CopyBuffer(h, io.NewSectionReader(f, start, end-start), buf); err != nil {
			return fmt.Errorf("bmap %s: read bytes %d–%d: %w", img, start, end, err)
		}
		sum := hex.EncodeToString(h.Sum(nil))
		if r.first == r.last {
			fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d </Range>\n", sum, r.first)
		} else {
			fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d-%d </Range>\n", sum, r.first, r.last)
		}
	}
	fmt.Fprintf(&b, "    </BlockMap>\n</bmap>\n")
	doc := b.Bytes()
	sum := sha256.Sum256(doc)
	copy(doc[sumAt:], hex.EncodeToString(sum[:]))
	return atomicfile.WriteFile(out, doc, 0o644)
}
