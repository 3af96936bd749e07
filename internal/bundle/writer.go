package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/bundle/stlv"
	"github.com/otabake/otabake/internal/chunker"
)

// Spec describes a bundle to build. It carries everything rugix-bundle.toml carries, so that
// the embedded manifest JSON, and with it the bundle hash, equals rugix-bundler's.
type Spec struct {
	// Incremental marks an "incremental" update (no boot-group switch); false means "full".
	Incremental bool
	// HashAlgorithm is the bundle hash algorithm; empty means SHA512_256 and is left out of
	// the manifest, as when rugix-bundle.toml has no hash-algorithm key.
	HashAlgorithm HashAlgorithm
	// Payloads are written in this order.
	Payloads []Payload
	// OmitManifest leaves the manifest JSON out of the header. rugix-ctrl does not need it,
	// but rugix-bundler unpack does; leave it false unless the header must be minimal.
	OmitManifest bool

	// manifest, when set by LoadDir, is the manifest exactly as rugix-bundle.toml spelled it
	// (including keys set to their defaults), so that its JSON equals rugix-bundler's.
	manifest *manifestDoc
}

// Payload is one payload of a bundle: its data source, where it is delivered and how it is
// encoded. Exactly one of Slot and Handler is set, and exactly one of Path and Open.
type Payload struct {
	// Filename is the payload's name in the manifest (rugix-bundler: the file in payloads/).
	// It defaults to the base name of Path.
	Filename string
	// Slot delivers the payload into a slot or boot-group slot alias ("boot", "system").
	Slot string
	// Handler delivers the payload to a program's stdin; it is the program's argv.
	Handler []string
	// Path is the file holding the payload.
	Path string
	// Open returns the payload data when it does not come from a file; it is called once.
	Open func() (io.ReadCloser, error)
	// BlockEncoding splits the payload into hashed blocks; nil stores the file as is.
	// rugix-ctrl ≥ 1.2 requires a block encoding for slot payloads.
	BlockEncoding *BlockEncoding
	// DeltaEncoding is copied into the header and the manifest for static delta payloads.
	DeltaEncoding *DeltaEncoding
}

// BlockEncoding selects how a payload is split into blocks and stored.
type BlockEncoding struct {
	// Chunker is "casync-N" or "fixed-N" (N in KiB); casync-64 matches device block indices.
	Chunker string
	// HashAlgorithm hashes each block; empty means SHA512_256 and is left out of the manifest.
	HashAlgorithm HashAlgorithm
	// Deduplicate stores repeated blocks once. Only for payloads whose target can be read back
	// (block and file slots), never for execute payloads or static deltas.
	Deduplicate bool
	// Compression compresses every stored block with xz; nil stores blocks raw.
	Compression *Compression
}

// Compression is the xz compression of a block encoding.
type Compression struct {
	// Level is the xz preset 0–9; nil means DefaultXZLevel and is left out of the manifest.
	Level *int
}

func (c *Compression) level() int {
	if c == nil || c.Level == nil {
		return DefaultXZLevel
	}
	return *c.Level
}

// CreateOptions tune how a bundle is written; they never change what is written except where
// noted.
type CreateOptions struct {
	// Workers is the number of goroutines that hash and compress blocks; 0 means GOMAXPROCS.
	// Output does not depend on it.
	Workers int
	// TempDir holds the encoded payload data until the header is known; the default is the
	// output's directory, so that the final copy can use copy_file_range.
	TempDir string
	// Progress, if set, is called from one goroutine as payload bytes are consumed.
	Progress func(Progress)
}

// Progress reports how far Create got.
type Progress struct {
	Payload  int   // index of the payload being encoded
	Done     int64 // bytes of this payload read so far
	Total    int64 // size of this payload, or -1 if unknown
	Payloads int   // number of payloads
}

// Result describes a written bundle.
type Result struct {
	// Hash is the bundle hash, "sha512-256:<hex>" with the default algorithm.
	Hash string
	// Size is the bundle's size in bytes.
	Size int64
	// Payloads has one entry per payload, in order.
	Payloads []PayloadResult
}

// PayloadResult describes one encoded payload.
type PayloadResult struct {
	FileSize     int64  // decoded size
	FileHash     string // digest text with the bundle algorithm
	DataSize     int64  // size of PAYLOAD_DATA
	Blocks       int    // number of blocks, duplicates included (0 without block encoding)
	StoredBlocks int    // blocks stored in PAYLOAD_DATA

	fileSum []byte
}

// Create writes the bundle described by spec to outPath atomically and returns its hash. The
// bytes follow rugix-bundler's pack exactly: header fields, manifest JSON and payload headers
// in its order, so an uncompressed bundle is byte-identical to rugix-bundler's.
func Create(ctx context.Context, outPath string, spec Spec, opts CreateOptions) (*Result, error) {
	alg := spec.HashAlgorithm
	if alg == "" {
		alg = SHA512_256
	}
	if _, err := ParseHashAlgorithm(string(alg)); err != nil {
		return nil, fmt.Errorf("bundle hash algorithm: %w", err)
	}
	if len(spec.Payloads) == 0 {
		return nil, errors.New("create bundle: no payloads")
	}
	for i := range spec.Payloads {
		if err := spec.Payloads[i].validate(); err != nil {
			return nil, fmt.Errorf("payload %d: %w", i, err)
		}
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.TempDir == "" {
		opts.TempDir = filepath.Dir(outPath)
	}

	header := Header{IsIncremental: spec.Incremental, HashAlgorithm: string(alg)}
	if !spec.OmitManifest {
		m, err := spec.manifestJSON()
		if err != nil {
			return nil, err
		}
		header.Manifest = &m
	}
	type encoded struct {
		header []byte
		data   *os.File // PAYLOAD_DATA bytes
		size   int64
	}
	encs := make([]encoded, len(spec.Payloads))
	defer func() {
		for _, e := range encs {
			if e.data != nil {
				e.data.Close()
			}
		}
	}()
	res := &Result{Payloads: make([]PayloadResult, len(spec.Payloads))}
	for i := range spec.Payloads {
		p := &spec.Payloads[i]
		ph, data, pr, err := encodePayload(ctx, i, len(spec.Payloads), p, alg, opts)
		if err != nil {
			return nil, fmt.Errorf("payload %d (%s): %w", i, p.name(), err)
		}
		hb, err := stlv.Marshal(TagPayloadHeader, ph)
		if err != nil {
			return nil, fmt.Errorf("payload %d: encode payload header: %w", i, err)
		}
		if len(hb) >= PayloadHeaderSizeLimit {
			return nil, fmt.Errorf("payload %d: payload header of %d bytes exceeds rugix-ctrl's limit of %d bytes", i, len(hb), PayloadHeaderSizeLimit)
		}
		encs[i] = encoded{header: hb, data: data, size: pr.DataSize}
		res.Payloads[i] = pr
		entry := PayloadEntry{HeaderHash: alg.Sum(hb), FileHash: pr.fileSum, DeltaEncoding: p.DeltaEncoding}
		if p.Slot != "" {
			entry.TypeSlot = &SlotType{Slot: p.Slot}
		} else {
			entry.TypeExecute = &ExecuteType{Handler: p.Handler}
		}
		res.Payloads[i].FileHash = Digest{alg, pr.fileSum}.String()
		header.Payloads = append(header.Payloads, entry)
	}
	hb, err := stlv.Marshal(TagBundleHeader, &header)
	if err != nil {
		return nil, fmt.Errorf("encode bundle header: %w", err)
	}
	if len(hb) >= HeaderSizeLimit {
		return nil, fmt.Errorf("bundle header of %d bytes exceeds rugix-ctrl's limit of %d bytes (too many payloads or a too large manifest)", len(hb), HeaderSizeLimit)
	}
	res.Hash = Digest{alg, alg.Sum(hb)}.String()

	out, err := atomicfile.Create(outPath, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cw := &countWriter{w: out}
	buf := stlv.AppendStart(nil, TagBundle)
	buf = append(buf, hb...)
	buf = stlv.AppendStart(buf, TagPayloads)
	if _, err := cw.Write(buf); err != nil {
		return nil, fmt.Errorf("write %s: %w", outPath, err)
	}
	for i, e := range encs {
		buf = stlv.AppendStart(buf[:0], TagPayload)
		buf = append(buf, e.header...)
		buf = stlv.AppendHead(buf, stlv.Head{Tag: TagPayloadData, Kind: stlv.Value, Len: uint64(e.size)})
		if _, err := cw.Write(buf); err != nil {
			return nil, fmt.Errorf("write %s: %w", outPath, err)
		}
		if _, err := e.data.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("payload %d: %w", i, err)
		}
		n, err := io.Copy(cw, e.data)
		if err != nil {
			return nil, fmt.Errorf("write payload %d to %s: %w", i, outPath, err)
		}
		if n != e.size {
			return nil, fmt.Errorf("payload %d: data changed size while writing (%d bytes, expected %d)", i, n, e.size)
		}
		if _, err := cw.Write(stlv.AppendEnd(buf[:0], TagPayload)); err != nil {
			return nil, fmt.Errorf("write %s: %w", outPath, err)
		}
	}
	buf = stlv.AppendEnd(buf[:0], TagPayloads)
	buf = stlv.AppendEnd(buf, TagBundle)
	if _, err := cw.Write(buf); err != nil {
		return nil, fmt.Errorf("write %s: %w", outPath, err)
	}
	if err := out.Commit(); err != nil {
		return nil, err
	}
	res.Size = cw.n
	return res, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom lets io.Copy from an *os.File reach the destination's copy_file_range path.
func (c *countWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(c.w, r)
	c.n += n
	return n, err
}

func (p *Payload) name() string {
	if p.Filename != "" {
		return p.Filename
	}
	return filepath.Base(p.Path)
}

func (p *Payload) validate() error {
	if (p.Slot == "") == (len(p.Handler) == 0) {
		return errors.New("want exactly one delivery: a slot or an execute handler")
	}
	if (p.Path == "") == (p.Open == nil) {
		return errors.New("want exactly one data source: a path or an open function")
	}
	if p.Path == "" && p.Filename == "" {
		return errors.New("a payload read through an open function needs a filename")
	}
	if be := p.BlockEncoding; be != nil {
		if _, err := chunker.ParseSpec(be.Chunker); err != nil {
			return fmt.Errorf("block encoding: %w", err)
		}
		if be.HashAlgorithm != "" {
			if _, err := ParseHashAlgorithm(string(be.HashAlgorithm)); err != nil {
				return fmt.Errorf("block encoding: %w", err)
			}
		}
		if c := be.Compression; c != nil && c.Level != nil && (*c.Level < 0 || *c.Level > 9) {
			return fmt.Errorf("block encoding: xz level %d out of range 0–9", *c.Level)
		}
		if be.Deduplicate && len(p.Handler) > 0 {
			return errors.New("deduplicated payloads cannot be delivered to an execute handler (rugix-ctrl cannot read blocks back from a pipe)")
		}
	}
	if d := p.DeltaEncoding; d != nil && p.BlockEncoding != nil && p.BlockEncoding.Deduplicate {
		return errors.New("static delta payloads cannot be deduplicated")
	}
	return nil
}

func (p *Payload) open() (io.ReadCloser, int64, error) {
	if p.Open != nil {
		rc, err := p.Open()
		return rc, -1, err
	}
	f, err := os.Open(p.Path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	size := fi.Size()
	if !fi.Mode().IsRegular() {
		size = -1
	}
	return f, size, nil
}
