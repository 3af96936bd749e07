package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/ctxio"
	"github.com/otabake/otabake/internal/tool"
)

// Static delta bundles (Rugix >= 0.8.12; specs/rugix-bundle.md §3.5). CreateDelta writes what
// `rugix-bundler delta OLD NEW OUT` writes (silitics/rugix
// crates/apps/rugix-bundler/src/main.rs, Cmd::Delta): the new bundle with, for each slot pair,
// the new payload replaced by an xdelta3 (VCDIFF) patch against the old payload, named
// "<filename>.xdelta", with block encoding fixed-256 and xz and the delta encoding
// {format xdelta, inputs [{hashes [H(old payload)]}], original-hash H(new payload)}, H being
// the new bundle's hash algorithm. xdelta3 runs as in crates/libs/rugix-bundle/src/xdelta.rs
// (xdelta_compress: `xdelta3 -e -s OLD NEW PATCH`; xdelta_decompress: `xdelta3 -d -c -s OLD`).

// DeltaSlot pairs the payload of the new bundle going to slot New with the payload of the old
// bundle going to slot Old, the one it is patched against.
type DeltaSlot struct {
	New string `json:"new"`
	Old string `json:"old"`
}

func (s DeltaSlot) String() string {
	if s.New == s.Old {
		return s.New
	}
	return s.New + ":" + s.Old
}

// ParseDeltaSlot parses rugix-bundler delta's --slot value NEW[:OLD]; OLD defaults to NEW.
func ParseDeltaSlot(s string) (DeltaSlot, error) {
	n, o, ok := strings.Cut(s, ":")
	if !ok {
		o = n
	}
	if n == "" || o == "" || strings.Contains(o, ":") {
		return DeltaSlot{}, fmt.Errorf("slot pair %q: want NEW or NEW:OLD", s)
	}
	return DeltaSlot{New: n, Old: o}, nil
}

// DefaultDeltaSlots are rugix-bundler delta's defaults (main.rs: `["system", "boot:system"]`):
// system against the old system, and boot against the old system too, because a device keeps
// the hash of immutable slots only (system, not boot; §3.6), so only a patch against the old
// system can find its input on the device.
var DefaultDeltaSlots = []DeltaSlot{{New: "system", Old: "system"}, {New: "boot", Old: "system"}}

// DeltaChunker is the block encoding of every patch payload (main.rs: ChunkerAlgorithm::Fixed
// { block_size_kib: 256 }), xz-compressed unless DeltaOptions.WithoutCompression.
const DeltaChunker = "fixed-256"

// DeltaOptions tune CreateDelta.
type DeltaOptions struct {
	// Slots are the slot pairs to patch; empty means DefaultDeltaSlots, of which pairs whose
	// slots the bundles lack are left out (rugix-bundler panics instead). Given pairs must exist.
	Slots []DeltaSlot
	// WithoutCompression stores the patch blocks raw (rugix-bundler delta --without-compression).
	WithoutCompression bool
	// Signer, if set, signs the delta bundle (as Sign) before it replaces the output.
	Signer CMSSigner
	// Create tunes the writing of the bundle; its TempDir also holds the decoded old payload
	// and the patch (default: the output's directory).
	Create CreateOptions
	// MaxPayloadSize bounds every decoded payload of both bundles (see ExtractOptions.MaxSize);
	// zero means DefaultMaxPayloadSize.
	MaxPayloadSize int64
}

// DeltaPayload describes one patched payload.
type DeltaPayload struct {
	Slot         DeltaSlot `json:"slot"`
	Payload      int       `json:"payload"` // index in the new and the delta bundle
	Filename     string    `json:"filename"`
	InputHash    string    `json:"inputHash"`    // of the old payload
	OriginalHash string    `json:"originalHash"` // of the new payload
	OldSize      int64     `json:"oldSize"`
	NewSize      int64     `json:"newSize"`
	PatchSize    int64     `json:"patchSize"` // xdelta3's output
	DataSize     int64     `json:"dataSize"`  // stored in the bundle (fixed-256 blocks, xz)
}

// DeltaResult describes a written delta bundle.
type DeltaResult struct {
	Output     string         `json:"output"`
	Hash       string         `json:"hash"`
	Size       int64          `json:"size"`
	NewSize    int64          `json:"newSize"` // the new (full) bundle's size
	Signatures int            `json:"signatures"`
	Payloads   []DeltaPayload `json:"payloads"`
}

// CreateDeltaFile writes to outPath (atomically) the static delta bundle that updates a device
// holding the payloads of the bundle at oldPath to those of the bundle at newPath, as
// rugix-bundler delta does (see the top of this file). Both bundles are decoded with every hash
// checked; payloads are streamed: only the old payload of a pair is written to a temporary
// file, for xdelta3 to seek in. The new bundle's embedded manifest is the delta bundle's, as in
// rugix-bundler, changed for the patched payloads (rugix-bundler 0.8.15 reads the old bundle's
// manifest there, a bug fixed upstream; for bundles with the same manifest it makes no
// difference).
func CreateDeltaFile(ctx context.Context, oldPath, newPath, outPath string, opts DeltaOptions) (*DeltaResult, error) {
	oldB, err := Open(oldPath)
	if err != nil {
		return nil, err
	}
	defer oldB.Close()
	newB, err := Open(newPath)
	if err != nil {
		return nil, err
	}
	defer newB.Close()
	if opts.Create.TempDir == "" {
		opts.Create.TempDir = filepath.Dir(outPath)
	}
	spec, err := newB.specFromManifest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", newPath, err)
	}
	pairs, err := deltaPairs(oldB, newB, opts.Slots)
	if err != nil {
		return nil, err
	}
	alg := newB.alg
	res := &DeltaResult{Output: outPath, NewSize: newB.size}
	var cleanup []func()
	defer func() {
		for _, f := range cleanup {
			f()
		}
	}()
	patched := map[int]bool{}
	for _, pr := range pairs {
		dp, patch, err := makePatch(ctx, oldB, newB, pr, alg, opts)
		if f, ok := patch.(*os.File); ok {
			cleanup = append(cleanup, func() { f.Close() })
		}
		if err != nil {
			return nil, fmt.Errorf("delta %s: %w", pr.slot, err)
		}
		p := &spec.Payloads[pr.newIndex]
		mp := &spec.manifest.Payloads[pr.newIndex]
		p.Filename = dp.Filename
		mp.Filename = dp.Filename
		p.Path, p.Open = "", func() (io.ReadCloser, error) {
			if _, err := patch.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
			return io.NopCloser(patch), nil
		}
		be := &BlockEncoding{Chunker: DeltaChunker}
		mbe := &manifestBlockEncoding{Chunker: DeltaChunker}
		if !opts.WithoutCompression {
			be.Compression = &Compression{}
			mbe.Compression = &manifestCompression{Type: "xz"}
		}
		p.BlockEncoding, mp.BlockEncoding = be, mbe
		p.DeltaEncoding = &DeltaEncoding{Format: "xdelta", Inputs: []DeltaEncodingInput{{Hashes: []string{dp.InputHash}}}, OriginalHash: dp.OriginalHash}
		mp.DeltaEncoding = &manifestDeltaEncoding{Format: "xdelta", Inputs: []manifestDeltaInput{{Hashes: []string{dp.InputHash}}}, OriginalHash: dp.OriginalHash}
		patched[pr.newIndex] = true
		res.Payloads = append(res.Payloads, dp)
	}
	// The other payloads are streamed from the new bundle into the delta bundle.
	for i := range spec.Payloads {
		if patched[i] {
			continue
		}
		i := i
		spec.Payloads[i].Path, spec.Payloads[i].Open = "", func() (io.ReadCloser, error) {
			pr, pw := io.Pipe()
			go func() {
				_, err := newB.Extract(ctx, i, pw, ExtractOptions{MaxSize: opts.MaxPayloadSize})
				pw.CloseWithError(err)
			}()
			return pr, nil
		}
	}

	write := outPath
	if opts.Signer != nil {
		// The unsigned bundle goes to a temporary file; Sign writes the output atomically.
		f, err := os.CreateTemp(opts.Create.TempDir, ".otabake-delta-*.rugixb")
		if err != nil {
			return nil, err
		}
		f.Close()
		write = f.Name()
		untrack := atomicfile.Track(write)
		defer func() { os.Remove(write); untrack() }()
	}
	cr, err := Create(ctx, write, spec, opts.Create)
	if err != nil {
		return nil, err
	}
	res.Hash, res.Size = cr.Hash, cr.Size
	for k := range res.Payloads {
		res.Payloads[k].DataSize = cr.Payloads[res.Payloads[k].Payload].DataSize
	}
	if opts.Signer != nil {
		sf, err := SignFile(ctx, write, outPath, opts.Signer)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(outPath)
		if err != nil {
			return nil, err
		}
		res.Hash, res.Size, res.Signatures = sf.Hash, st.Size(), sf.Signatures
	}
	return res, nil
}

// specFromManifest rebuilds the Spec the bundle was made from out of its embedded manifest (as
// rugix-bundler unpack writes rugix-bundle.toml), with payload sources left unset.
func (b *Bundle) specFromManifest() (Spec, error) {
	if b.header.Manifest == nil {
		return Spec{}, errors.New("the bundle has no embedded manifest (rugix-bundler delta needs it too)")
	}
	var doc manifestDoc
	dec := json.NewDecoder(strings.NewReader(*b.header.Manifest))
	if err := dec.Decode(&doc); err != nil {
		return Spec{}, fmt.Errorf("embedded manifest: %w", err)
	}
	spec := Spec{manifest: &doc, Incremental: b.header.IsIncremental}
	if doc.HashAlgorithm != nil {
		a, err := ParseHashAlgorithm(*doc.HashAlgorithm)
		if err != nil {
			return Spec{}, fmt.Errorf("embedded manifest: hash-algorithm: %w", err)
		}
		spec.HashAlgorithm = a
	}
	if spec.HashAlgorithm.orDefault() != b.alg {
		return Spec{}, fmt.Errorf("embedded manifest names hash algorithm %s, the header %s", spec.HashAlgorithm.orDefault(), b.alg)
	}
	if len(doc.Payloads) != len(b.payloads) {
		return Spec{}, fmt.Errorf("embedded manifest lists %d payloads, the header %d", len(doc.Payloads), len(b.payloads))
	}
	for i := range doc.Payloads {
		p, err := doc.Payloads[i].toPayload("")
		if err != nil {
			return Spec{}, fmt.Errorf("embedded manifest: payloads[%d]: %w", i, err)
		}
		e := b.payloads[i].Entry
		if (p.Slot != "" && (e.TypeSlot == nil || e.TypeSlot.Slot != p.Slot)) || (p.Slot == "" && e.TypeExecute == nil) {
			return Spec{}, fmt.Errorf("embedded manifest: payloads[%d] (%s) is delivered as %s, the header says %s", i, p.Filename, doc.Payloads[i].Delivery.Type, b.payloads[i].Delivery())
		}
		p.Path = ""
		spec.Payloads = append(spec.Payloads, p)
	}
	return spec, nil
}

func (a HashAlgorithm) orDefault() HashAlgorithm {
	if a == "" {
		return SHA512_256
	}
	return a
}

type deltaPair struct {
	slot               DeltaSlot
	oldIndex, newIndex int
}

// slotPayload finds the one payload going to slot; rugix-bundler takes the first.
func (b *Bundle) slotPayload(slot string) (int, bool) {
	for i, p := range b.payloads {
		if p.Slot() == slot {
			return i, true
		}
	}
	return 0, false
}

func deltaPairs(oldB, newB *Bundle, slots []DeltaSlot) ([]deltaPair, error) {
	given := len(slots) > 0
	if !given {
		slots = DefaultDeltaSlots
	}
	var out []deltaPair
	seen := map[int]bool{}
	for _, s := range slots {
		ni, nok := newB.slotPayload(s.New)
		oi, ook := oldB.slotPayload(s.Old)
		if !nok || !ook {
			if !given {
				continue
			}
			which, slot := "new", s.New
			if nok {
				which, slot = "old", s.Old
			}
			return nil, fmt.Errorf("delta %s: the %s bundle has no payload for slot %q", s, which, slot)
		}
		if seen[ni] {
			return nil, fmt.Errorf("delta %s: slot %q of the new bundle is patched twice", s, s.New)
		}
		seen[ni] = true
		if newB.payloads[ni].Entry.DeltaEncoding != nil {
			return nil, fmt.Errorf("delta %s: payload %d of the new bundle is already a static delta", s, ni)
		}
		if oldB.payloads[oi].Entry.DeltaEncoding != nil {
			return nil, fmt.Errorf("delta %s: payload %d of the old bundle is a static delta, not a slot's content", s, oi)
		}
		out = append(out, deltaPair{slot: s, oldIndex: oi, newIndex: ni})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no slot pair of %v has a payload in both bundles", slots)
	}
	return out, nil
}

// makePatch decodes the old payload into a temporary file and streams the new payload through
// `xdelta3 -e` into an unlinked temporary file, the patch. The application header xdelta3
// writes holds the file names (of new, then old) as rugix-bundler's run of
// `xdelta3 -e -s payloads/OLD payloads/NEW PATCH` writes them, so the patch bytes are the same.
func makePatch(ctx context.Context, oldB, newB *Bundle, pr deltaPair, alg HashAlgorithm, opts DeltaOptions) (DeltaPayload, io.ReadSeeker, error) {
	oldName, newName := oldB.payloadFilename(pr.oldIndex), newB.payloadFilename(pr.newIndex)
	dp := DeltaPayload{Slot: pr.slot, Payload: pr.newIndex, Filename: newName + ".xdelta"}

	src, err := os.CreateTemp(opts.Create.TempDir, ".otabake-delta-old-*")
	if err != nil {
		return dp, nil, fmt.Errorf("create temporary file for the old payload: %w", err)
	}
	untrack := atomicfile.Track(src.Name())
	defer func() { src.Close(); os.Remove(src.Name()); untrack() }()
	// Extract checks the old payload against its file hash, so with the same algorithm that
	// hash is the input hash; only with another algorithm is the payload hashed again.
	var w io.Writer = src
	h := alg.New()
	if oldB.alg != alg {
		w = io.MultiWriter(src, h)
	}
	st, err := oldB.Extract(ctx, pr.oldIndex, w, ExtractOptions{MaxSize: opts.MaxPayloadSize})
	if err != nil {
		return dp, nil, fmt.Errorf("old bundle: %w", err)
	}
	if err := src.Sync(); err != nil {
		return dp, nil, err
	}
	inSum := oldB.payloads[pr.oldIndex].Entry.FileHash
	if oldB.alg != alg {
		inSum = h.Sum(nil)
	}
	dp.InputHash, dp.OldSize = Digest{alg, inSum}.String(), st.FileSize
	dp.OriginalHash = Digest{alg, newB.payloads[pr.newIndex].Entry.FileHash}.String()

	patch, err := tempFile(opts.Create.TempDir)
	if err != nil {
		return dp, nil, err
	}
	in, pw := io.Pipe()
	done := make(chan error, 1)
	var newSize int64
	go func() {
		st, err := newB.Extract(ctx, pr.newIndex, pw, ExtractOptions{MaxSize: opts.MaxPayloadSize})
		if st != nil {
			newSize = st.FileSize
		}
		pw.CloseWithError(err)
		done <- err
	}()
	_, runErr := tool.Run(ctx, tool.Cmd{Path: "xdelta3", Package: "xdelta3", Stdin: in, Stdout: patch,
		Args: []string{"-e", "-c", "-A=" + newName + "//" + oldName + "/", "-s", src.Name()}})
	in.CloseWithError(errors.New("xdelta3 exited"))
	exErr := <-done
	if exErr != nil {
		return dp, patch, fmt.Errorf("new bundle: %w", exErr)
	}
	if runErr != nil {
		return dp, patch, runErr
	}
	dp.NewSize = newSize
	if dp.PatchSize, err = patch.Seek(0, io.SeekEnd); err != nil {
		return dp, patch, err
	}
	return dp, patch, nil
}

// payloadFilename is the payload's file name in the embedded manifest, or payload<i>.
func (b *Bundle) payloadFilename(i int) string {
	if b.header.Manifest != nil {
		var doc manifestDoc
		if json.Unmarshal([]byte(*b.header.Manifest), &doc) == nil && i < len(doc.Payloads) && doc.Payloads[i].Filename != "" && !strings.Contains(doc.Payloads[i].Filename, "/") {
			return doc.Payloads[i].Filename
		}
	}
	return fmt.Sprintf("payload%d", i)
}

// ErrDeltaInput is wrapped when the old payload given for a static delta is not the one the
// patch was made against.
var ErrDeltaInput = errors.New("static delta: the source does not match the patch's input hash")

// checkDeltaSource checks that the file at source hashes to one of the delta's input hashes,
// as rugix-ctrl picks the source slot by its stored hash (rugix-ctrl supports exactly one
// input; ctrl/src/cli.rs).
func checkDeltaSource(ctx context.Context, d *DeltaEncoding, source string) error {
	if d.Format != "xdelta" {
		return fmt.Errorf("static delta format %q: only xdelta is known", d.Format)
	}
	if len(d.Inputs) != 1 {
		return fmt.Errorf("static delta with %d inputs: rugix-ctrl supports exactly one", len(d.Inputs))
	}
	sums := map[HashAlgorithm][]byte{}
	for _, text := range d.Inputs[0].Hashes {
		want, err := ParseDigest(text)
		if err != nil {
			return fmt.Errorf("static delta input hash: %w", err)
		}
		got, ok := sums[want.Algorithm]
		if !ok {
			f, err := os.Open(source)
			if err != nil {
				return err
			}
			h := want.Algorithm.New()
			_, err = io.Copy(h, ctxio.Reader(ctx, f))
			f.Close()
			if err != nil {
				return fmt.Errorf("hash %s: %w", source, err)
			}
			got = h.Sum(nil)
			sums[want.Algorithm] = got
		}
		if bytes.Equal(got, want.Sum) {
			return nil
		}
	}
	var have []string
	for a, s := range sums {
		have = append(have, Digest{a, s}.String())
	}
	return fmt.Errorf("%w: %s hashes to %s, the patch applies to %s", ErrDeltaInput, source, strings.Join(have, ", "), strings.Join(d.Inputs[0].Hashes, ", "))
}

// applyDelta decodes the static-delta payload i (the patch) through `xdelta3 -d -c -s source`
// into w, as rugix-ctrl installs it (xdelta_decompress), holding the output to limit bytes and
// checking it against the original hash. The source must have been checked already.
func (b *Bundle) applyDelta(ctx context.Context, i int, source string, w io.Writer, limit int64) (*PayloadStats, error) {
	d := b.payloads[i].Entry.DeltaEncoding
	want, err := ParseDigest(d.OriginalHash)
	if err != nil {
		return nil, fmt.Errorf("static delta original hash: %w", err)
	}
	in, pw := io.Pipe()
	done := make(chan error, 1)
	var patchStats *PayloadStats
	go func() {
		st, err := b.Extract(ctx, i, pw, ExtractOptions{MaxSize: limit})
		patchStats = st
		pw.CloseWithError(err)
		done <- err
	}()
	h := want.Algorithm.New()
	out := &limitWriter{w: io.MultiWriter(w, h), left: limitOrDefault(limit)}
	_, runErr := tool.Run(ctx, tool.Cmd{Path: "xdelta3", Package: "xdelta3", Stdin: in, Stdout: out,
		Args: []string{"-d", "-c", "-s", source}})
	in.CloseWithError(errors.New("xdelta3 exited"))
	if err := <-done; err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	if out.err != nil {
		return nil, out.err
	}
	if runErr != nil {
		return nil, fmt.Errorf("apply the patch: %w", runErr)
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, want.Sum) {
		return nil, fmt.Errorf("static delta: the patched %d bytes hash to %s, the original hash is %s", out.n, Digest{want.Algorithm, sum}, d.OriginalHash)
	}
	return &PayloadStats{FileSize: out.n, Blocks: patchStats.Blocks, StoredBlocks: patchStats.StoredBlocks}, nil
}

// limitWriter fails once more than left bytes were written.
type limitWriter struct {
	w    io.Writer
	left int64
	n    int64
	err  error
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		l.err = fmt.Errorf("%w: the patched payload exceeds the limit of %d bytes", ErrPayloadTooLarge, l.n+l.left)
		return 0, l.err
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	l.left -= int64(n)
	return n, err
}
