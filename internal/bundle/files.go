package bundle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/chunker"
	"github.com/otabake/otabake/internal/ctxio"
)

// This file holds the operations on bundle, image and index files by path that the otabake
// bundle commands run: each opens what it needs, does the work of one command and returns its
// result, so that a command only parses its flags, calls one function and prints.

// WriteHashFile writes the bundle hash of the bundle at path to out without a newline, as Rugix
// Bakery writes system.rugixb-hash, and returns it.
func WriteHashFile(path, out string) (string, error) {
	h, err := HashFile(path)
	if err != nil {
		return "", err
	}
	return h, atomicfile.WriteFile(out, []byte(h), 0o644)
}

// WriteSignedMetadata writes the bytes a signature of the bundle at path must sign (like
// rugix-bundler signatures prepare) to out.
func WriteSignedMetadata(path, out string) error {
	h, err := HashFile(path)
	if err != nil {
		return err
	}
	d, err := ParseDigest(h)
	if err != nil {
		return fmt.Errorf("internal: bundle hash %q does not parse: %w", h, err)
	}
	return atomicfile.WriteFile(out, SignedMetadataFor(d), 0o644)
}

// ReadExpectedHash resolves an expected bundle hash as given on a command line: the hash
// itself, or @FILE for a file holding it (such as system.rugixb-hash), white space around it
// ignored.
func ReadExpectedHash(arg string) (string, error) {
	f, ok := strings.CutPrefix(arg, "@")
	if !ok {
		return arg, nil
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// VerifyFile opens the bundle at path and verifies it; see Bundle.Verify.
func VerifyFile(ctx context.Context, path string, opts VerifyOptions) (*VerifyReport, error) {
	b, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.Verify(ctx, opts)
}

// Totals adds up the verified payloads: their blocks (duplicates included) and decoded bytes.
func (r *VerifyReport) Totals() (blocks int, bytes int64) {
	for _, p := range r.Payloads {
		blocks += p.Blocks
		bytes += p.FileSize
	}
	return blocks, bytes
}

// PayloadIndex resolves a payload selector: an index, or the slot that exactly one payload
// goes to.
func (b *Bundle) PayloadIndex(sel string) (int, error) {
	if n, err := strconv.Atoi(sel); err == nil {
		if n < 0 || n >= len(b.payloads) {
			return 0, fmt.Errorf("payload %d: the bundle has %d payloads", n, len(b.payloads))
		}
		return n, nil
	}
	found := -1
	for _, p := range b.payloads {
		if p.Slot() == sel {
			if found >= 0 {
				return 0, fmt.Errorf("payload %q: several payloads go to this slot; give an index", sel)
			}
			found = p.Index
		}
	}
	if found < 0 {
		return 0, fmt.Errorf("payload %q: no payload goes to this slot", sel)
	}
	return found, nil
}

// ExtractFileOptions select the payload ExtractFile decodes and bound it.
type ExtractFileOptions struct {
	// Payload is a payload index or a slot name (see PayloadIndex).
	Payload string
	// BundleHash, if set, must equal the bundle hash; it is checked as Verify checks it, before
	// anything is decoded.
	BundleHash string
	// MaxSize is the most decoded bytes the payload may declare; the free space of the output's
	// file system lowers it. Zero means that free space (DefaultMaxPayloadSize when unknown).
	MaxSize int64
	// Source, for a static-delta payload, is the old payload (a slot's content) its patch
	// applies to: the patch is decoded through xdelta3 and the new payload written, checked
	// against the original hash. A source that does not hash to the patch's input hash is
	// refused (ErrDeltaInput) before out is touched. Without Source a static-delta payload
	// extracts to its patch, as rugix-bundler extract does.
	Source string
}

// ExtractFile decodes one payload of the bundle at path into the file out, written atomically,
// checking the payload header hash, every block hash and the file hash (see Extract). It
// returns the payload's index and what was decoded.
func ExtractFile(ctx context.Context, path, out string, opts ExtractFileOptions) (int, *PayloadStats, error) {
	b, err := Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer b.Close()
	if err := b.CheckHash(opts.BundleHash); err != nil {
		return 0, nil, err
	}
	i, err := b.PayloadIndex(opts.Payload)
	if err != nil {
		return 0, nil, err
	}
	limit := opts.MaxSize
	if free, err := FreeSpace(filepath.Dir(out)); err == nil && (limit == 0 || free < limit) {
		limit = max(free, 1) // zero would mean the default
	}
	if _, err := b.CheckPayloadSize(ctx, i, limit); err != nil {
		return i, nil, err
	}
	d := b.payloads[i].Entry.DeltaEncoding
	if opts.Source != "" {
		if d == nil {
			return i, nil, fmt.Errorf("payload %d is not a static delta: a source applies only to static-delta payloads", i)
		}
		if err := checkDeltaSource(ctx, d, opts.Source); err != nil {
			return i, nil, fmt.Errorf("payload %d: %w", i, err)
		}
	}
	f, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return i, nil, err
	}
	defer f.Close()
	var st *PayloadStats
	if opts.Source != "" {
		st, err = b.applyDelta(ctx, i, opts.Source, f.File, limit)
		if err != nil {
			err = fmt.Errorf("payload %d: %w", i, err)
		}
	} else {
		st, err = b.Extract(ctx, i, f.File, ExtractOptions{MaxSize: limit})
	}
	if err != nil {
		return i, nil, err
	}
	return i, st, f.Commit()
}

// HashFileBlocks chunks the file at path and calls fn with every block's digest; see
// HashBlocks.
func HashFileBlocks(ctx context.Context, spec chunker.Spec, path string, alg HashAlgorithm, workers int, fn func(chunker.BlockSum) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := HashBlocks(ctx, spec, f, alg, workers, fn); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// WriteBlockIndexFile computes the on-device block index of the slot image or device at path
// (rugix-ctrl slots create-index) and writes it to out.
func WriteBlockIndexFile(ctx context.Context, path, out string, spec chunker.Spec, alg HashAlgorithm, workers int) (*BlockIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	x, err := ComputeBlockIndex(ctx, f, spec, alg, workers)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data, err := x.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return x, atomicfile.WriteFile(out, data, 0o644)
}

// ReadBlockIndexFile reads the block index file at path.
func ReadBlockIndexFile(path string) (*BlockIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	x, err := ReadBlockIndex(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return x, nil
}

// DeltaReport is what a device holding some block indices downloads of a bundle: per payload
// (Delta) and in total, headers and signatures included.
type DeltaReport struct {
	BundleSize    int64          `json:"bundleSize"`
	DownloadBytes int64          `json:"downloadBytes"`
	Payloads      []PayloadDelta `json:"payloads"`
	// Ratio is DownloadBytes over BundleSize.
	Ratio float64 `json:"ratio"`
}

// DeltaFile estimates what a device holding the data of the block index files indexPaths
// downloads of the bundle at path; see Bundle.DeltaReport.
func DeltaFile(path string, indexPaths []string) (*DeltaReport, error) {
	var indices []*BlockIndex
	for _, p := range indexPaths {
		x, err := ReadBlockIndexFile(p)
		if err != nil {
			return nil, err
		}
		indices = append(indices, x)
	}
	b, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.DeltaReport(indices)
}

// DeltaReport adds up Delta: the payloads' download bytes plus everything outside the payload
// data (headers and signatures), which a device always downloads.
func (b *Bundle) DeltaReport(indices []*BlockIndex) (*DeltaReport, error) {
	ds, err := b.Delta(indices)
	if err != nil {
		return nil, err
	}
	r := &DeltaReport{BundleSize: b.size, DownloadBytes: b.size, Payloads: ds}
	for i, d := range ds {
		r.DownloadBytes += d.DownloadBytes - b.payloads[i].DataSize
	}
	r.Ratio = float64(r.DownloadBytes) / float64(r.BundleSize)
	return r, nil
}

// SignedFile describes a bundle file after signing.
type SignedFile struct {
	Hash       string `json:"hash"`
	Output     string `json:"output"`
	Signatures int    `json:"signatures"`
}

// SignFile signs the bundle at path with s, writes it to out (which may be path) and describes
// the result; see Sign.
func SignFile(ctx context.Context, path, out string, s CMSSigner) (*SignedFile, error) {
	if err := Sign(ctx, path, out, s); err != nil {
		return nil, err
	}
	return describeSigned(out)
}

// AddSignatureFile adds the DER CMS signature in the file sigPath to the bundle at path, writes
// it to out (which may be path) and describes the result; see AddSignature.
func AddSignatureFile(ctx context.Context, path, sigPath, out string) (*SignedFile, error) {
	der, err := ctxio.ReadFile(sigPath, SignaturesSizeLimit)
	if err != nil {
		return nil, err
	}
	if err := AddSignature(ctx, path, out, der); err != nil {
		return nil, err
	}
	return describeSigned(out)
}

func describeSigned(path string) (*SignedFile, error) {
	b, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return &SignedFile{Hash: b.Hash(), Output: path, Signatures: len(b.signatures)}, nil
}
