package bundle

import (
	"fmt"
	"io"
	"os"

	"github.com/otabake/otabake/internal/bundle/stlv"
)

// Bundle is an opened bundle: its header, signatures and the location of every payload, found
// by reading only the headers (payload data is skipped by offset, never read). Methods that
// read payload data may be called concurrently.
type Bundle struct {
	r      io.ReaderAt
	size   int64
	closer io.Closer

	headerBytes []byte
	header      Header
	alg         HashAlgorithm
	hash        Digest
	signatures  [][]byte
	payloads    []PayloadInfo
	// payloadsOffset is the offset of the start of PAYLOADS: signing copies from there.
	payloadsOffset int64
}

// PayloadInfo locates one payload inside the bundle.
type PayloadInfo struct {
	// Index is the payload's position in the header.
	Index int
	// Entry is the payload's entry in the bundle header.
	Entry *PayloadEntry
	// Header is the decoded payload header.
	Header PayloadHeader
	// HeaderOffset and HeaderSize locate the PAYLOAD_HEADER segment.
	HeaderOffset, HeaderSize int64
	// DataOffset and DataSize locate the PAYLOAD_DATA value.
	DataOffset, DataSize int64

	headerSum []byte // hash of the payload header bytes with the bundle algorithm
}

// Slot returns the payload's slot, or "" for an execute or app payload.
func (p *PayloadInfo) Slot() string {
	if p.Entry.TypeSlot != nil {
		return p.Entry.TypeSlot.Slot
	}
	return ""
}

// Open opens and indexes the bundle at path. Close releases the file.
func Open(path string) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	b, err := NewReader(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	b.closer = f
	return b, nil
}

// Close closes the file opened by Open; it does nothing for a Bundle from NewReader.
func (b *Bundle) Close() error {
	if b.closer != nil {
		return b.closer.Close()
	}
	return nil
}

// NewReader indexes the bundle held by r (size bytes). It enforces rugix-ctrl's size limits and
// the strict structure of rugix-ctrl 1.x: the root and payload starts must be present, and
// nothing may follow the last payload but the closing atoms. Hashes are not checked here;
// Verify and ExtractPayload check them.
func NewReader(r io.ReaderAt, size int64) (*Bundle, error) {
	b := &Bundle{r: r, size: size}
	rd := stlv.NewReader(io.NewSectionReader(r, 0, size), 0)
	if err := readHeader(rd, b); err != nil {
		return nil, err
	}
	// Optional metadata up to the payloads: one SIGNATURES segment, optional atoms skipped.
	for {
		at := rd.Offset()
		h, err := next(rd)
		if err != nil {
			return nil, err
		}
		if h.Kind == stlv.Start && h.Tag == TagPayloads {
			b.payloadsOffset = at
			break
		}
		switch {
		case h.Kind == stlv.Start && h.Tag == TagSignatures:
			if b.signatures != nil {
				return nil, fmt.Errorf("offset %d: multiple signature segments", at)
			}
			seg, err := rd.ReadSegment(TagSignatures, SignaturesSizeLimit)
			if err != nil {
				return nil, err
			}
			var s Signatures
			if err := stlv.Unmarshal(seg, TagSignatures, &s); err != nil {
				return nil, fmt.Errorf("signatures at offset %d: %w", at, err)
			}
			b.signatures = s.CMS
			if b.signatures == nil {
				b.signatures = [][]byte{}
			}
		case h.Tag.Optional():
			if err := skipAtom(rd, h); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("offset %d: unexpected %s atom %s between header and payloads", at, h.Kind, h.Tag)
		}
	}
	for i := range b.header.Payloads {
		p, err := readPayload(rd, r, size, b, i)
		if err != nil {
			return nil, fmt.Errorf("payload %d: %w", i, err)
		}
		b.payloads = append(b.payloads, p)
		rd = stlv.NewReader(io.NewSectionReader(r, p.DataOffset+p.DataSize, size-p.DataOffset-p.DataSize), p.DataOffset+p.DataSize)
		if err := expectEnd(rd, TagPayload); err != nil {
			return nil, fmt.Errorf("payload %d: %w", i, err)
		}
	}
	if err := expectEnd(rd, TagPayloads); err != nil {
		return nil, err
	}
	if err := expectEnd(rd, TagBundle); err != nil {
		return nil, err
	}
	if at := rd.Offset(); at != size {
		return nil, fmt.Errorf("offset %d: %d trailing bytes after the bundle", at, size-at)
	}
	return b, nil
}

// next reads an atom head and turns a clean EOF into a truncation error.
func next(rd *stlv.Reader) (stlv.Head, error) {
	at := rd.Offset()
	h, err := rd.Next()
	if err == io.EOF {
		return h, fmt.Errorf("offset %d: unexpected end of bundle: %w", at, stlv.ErrTruncated)
	}
	return h, err
}

// readHeader reads the root start and the header segment into b.
func readHeader(rd *stlv.Reader, b *Bundle) error {
	h, err := next(rd)
	if err != nil {
		return fmt.Errorf("not a Rugix bundle: %w", err)
	}
	if h.Kind != stlv.Start || h.Tag != TagBundle {
		return fmt.Errorf("offset 0: not a Rugix bundle (found %s atom %s, want start of %s)", h.Kind, h.Tag, TagBundle)
	}
	for {
		at := rd.Offset()
		h, err = next(rd)
		if err != nil {
			return err
		}
		if h.Kind == stlv.Start && h.Tag == TagBundleHeader {
			break
		}
		if !h.Tag.Optional() {
			return fmt.Errorf("offset %d: unexpected %s atom %s before the bundle header", at, h.Kind, h.Tag)
		}
		if err := skipAtom(rd, h); err != nil {
			return err
		}
	}
	at := rd.Offset() - 5
	seg, err := rd.ReadSegment(TagBundleHeader, HeaderSizeLimit)
	if err != nil {
		return fmt.Errorf("bundle header: %w", err)
	}
	// The 1.x atoms whose tags are not published are taken out first (components.go); the
	// bundle hash still covers the header exactly as stored.
	rec := recognise(seg)
	if err := stlv.Unmarshal(rec.clean, TagBundleHeader, &b.header); err != nil {
		if len(rec.clean) != len(seg) {
			return fmt.Errorf("bundle header at offset %d (offsets without the %d bytes of component metadata and app-file modes): %w", at, len(seg)-len(rec.clean), err)
		}
		return fmt.Errorf("bundle header at offset %d: %w", at, err)
	}
	b.header.Components = rec.components
	for k, m := range rec.modes {
		if k >= len(b.header.Payloads) || b.header.Payloads[k].TypeAppFile == nil {
			return fmt.Errorf("bundle header at offset %d: payload %d: app-file mode %s outside an app-file type", at, k, rec.modeTags[k])
		}
		b.header.Payloads[k].TypeAppFile.Mode = &m
	}
	alg, err := ParseHashAlgorithm(b.header.HashAlgorithm)
	if err != nil {
		return fmt.Errorf("bundle header at offset %d: %w", at, err)
	}
	if err := checkEntries(&b.header); err != nil {
		return fmt.Errorf("bundle header at offset %d: %w", at, err)
	}
	for i, e := range b.header.Payloads {
		if len(e.HeaderHash) != alg.Size() || len(e.FileHash) != alg.Size() {
			return fmt.Errorf("bundle header: payload %d: hashes must be %d bytes (%s)", i, alg.Size(), alg)
		}
	}
	b.headerBytes, b.alg = seg, alg
	b.hash = Digest{alg, alg.Sum(seg)}
	return nil
}

func readPayload(rd *stlv.Reader, r io.ReaderAt, size int64, b *Bundle, i int) (PayloadInfo, error) {
	p := PayloadInfo{Index: i, Entry: &b.header.Payloads[i]}
	at := rd.Offset()
	h, err := next(rd)
	if err != nil {
		return p, err
	}
	if h.Kind != stlv.Start || h.Tag != TagPayload {
		return p, fmt.Errorf("offset %d: found %s atom %s, want start of payload %s", at, h.Kind, h.Tag, TagPayload)
	}
	if h, err = skipOptional(rd); err != nil {
		return p, err
	}
	if h.Kind != stlv.Start || h.Tag != TagPayloadHeader {
		return p, fmt.Errorf("offset %d: found %s atom %s, want the payload header", rd.Offset(), h.Kind, h.Tag)
	}
	p.HeaderOffset = rd.Offset() - 5
	seg, err := rd.ReadSegment(TagPayloadHeader, PayloadHeaderSizeLimit)
	if err != nil {
		return p, fmt.Errorf("payload header: %w", err)
	}
	p.HeaderSize = int64(len(seg))
	p.headerSum = b.alg.Sum(seg)
	if err := stlv.Unmarshal(seg, TagPayloadHeader, &p.Header); err != nil {
		return p, fmt.Errorf("payload header at offset %d: %w", p.HeaderOffset, err)
	}
	if be := p.Header.BlockEncoding; be != nil {
		if _, err := ParseHashAlgorithm(be.HashAlgorithm); err != nil {
			return p, fmt.Errorf("payload header at offset %d: block encoding: %w", p.HeaderOffset, err)
		}
		if _, err := parseChunker(be.Chunker); err != nil {
			return p, fmt.Errorf("payload header at offset %d: block encoding: %w", p.HeaderOffset, err)
		}
		if be.Compression != nil && *be.Compression != "xz" {
			return p, fmt.Errorf("payload header at offset %d: unknown compression %q", p.HeaderOffset, *be.Compression)
		}
	}
	if h, err = skipOptional(rd); err != nil {
		return p, err
	}
	if h.Kind != stlv.Value || h.Tag != TagPayloadData {
		return p, fmt.Errorf("offset %d: found %s atom %s, want the payload data", rd.Offset(), h.Kind, h.Tag)
	}
	p.DataOffset, p.DataSize = rd.Offset(), int64(h.Len)
	if h.Len > uint64(size-p.DataOffset) {
		return p, fmt.Errorf("offset %d: payload data of %d bytes runs past the end of the bundle (%d bytes): %w", p.DataOffset, h.Len, size, stlv.ErrTruncated)
	}
	return p, nil
}

// skipOptional skips optional atoms and returns the first required one.
func skipOptional(rd *stlv.Reader) (stlv.Head, error) {
	for {
		h, err := next(rd)
		if err != nil || !h.Tag.Optional() {
			return h, err
		}
		if err := skipAtom(rd, h); err != nil {
			return h, err
		}
	}
}

func expectEnd(rd *stlv.Reader, tag stlv.Tag) error {
	h, err := skipOptional(rd)
	if err != nil {
		return err
	}
	if h.Kind != stlv.End || h.Tag != tag {
		return fmt.Errorf("offset %d: found %s atom %s, want end of %s", rd.Offset(), h.Kind, h.Tag, tag)
	}
	return nil
}

// skipAtom skips the rest of an atom: a value's bytes, or a whole (balanced) segment.
func skipAtom(rd *stlv.Reader, h stlv.Head) error {
	switch h.Kind {
	case stlv.Value:
		return rd.SkipValue()
	case stlv.End:
		return fmt.Errorf("offset %d: unexpected end of segment %s", rd.Offset()-5, h.Tag)
	}
	stack := []stlv.Tag{h.Tag}
	for len(stack) > 0 {
		at := rd.Offset()
		c, err := next(rd)
		if err != nil {
			return err
		}
		switch c.Kind {
		case stlv.Value:
			if err := rd.SkipValue(); err != nil {
				return err
			}
		case stlv.Start:
			if len(stack) >= stlv.MaxDepth {
				return fmt.Errorf("offset %d: segments nested deeper than %d", at, stlv.MaxDepth)
			}
			stack = append(stack, c.Tag)
		case stlv.End:
			if top := stack[len(stack)-1]; c.Tag != top {
				return fmt.Errorf("offset %d: end of segment %s where segment %s is open", at, c.Tag, top)
			}
			stack = stack[:len(stack)-1]
		}
	}
	return nil
}

// Hash returns the bundle hash, "sha512-256:<hex>" with the default algorithm.
func (b *Bundle) Hash() string { return b.hash.String() }

// Digest returns the bundle hash.
func (b *Bundle) Digest() Digest { return b.hash }

// HashAlgorithm is the bundle's hash algorithm (for the bundle hash and file hashes).
func (b *Bundle) HashAlgorithm() HashAlgorithm { return b.alg }

// Header returns the decoded bundle header.
func (b *Bundle) Header() *Header { return &b.header }

// HeaderBytes returns the header segment exactly as stored: the bytes the bundle hash covers.
func (b *Bundle) HeaderBytes() []byte { return b.headerBytes }

// Size returns the bundle's size in bytes.
func (b *Bundle) Size() int64 { return b.size }

// Payloads returns the payloads in header order.
func (b *Bundle) Payloads() []PayloadInfo { return b.payloads }

// Signatures returns the DER CMS signatures of the SIGNATURES segment (nil if there is none).
func (b *Bundle) Signatures() [][]byte { return b.signatures }

// HashFile returns the bundle hash of the bundle at path, reading only its header.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b Bundle
	if err := readHeader(stlv.NewReader(io.LimitReader(f, HeaderSizeLimit+64), 0), &b); err != nil {
		return "", fmt.Errorf("bundle %s: %w", path, err)
	}
	return b.hash.String(), nil
}
