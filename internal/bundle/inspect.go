package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"
)

// Inspection is what Inspect reports about a bundle: its header, manifest, component metadata,
// payloads with their block statistics, and signatures. It is the --json shape of
// `otabake bundle inspect`.
type Inspection struct {
	Hash          string               `json:"hash"`
	HashAlgorithm string               `json:"hashAlgorithm"`
	Size          int64                `json:"size"`
	Incremental   bool                 `json:"incremental"`
	HeaderSize    int                  `json:"headerSize"`
	Manifest      *string              `json:"manifest,omitempty"`
	Components    *InspectedComponents `json:"components,omitempty"`
	Payloads      []InspectedPayload   `json:"payloads"`
	Signatures    []InspectedSignature `json:"signatures"`
	// Warnings say what today's Rugix Ctrl refuses (payloads without a block index).
	Warnings []string `json:"warnings"`
}

// InspectedComponents is the header's component metadata; the tags are reported because no
// published source gives their values.
type InspectedComponents struct {
	Tags  map[string]string        `json:"tags"`
	Files []InspectedComponentFile `json:"files"`
}

// InspectedComponentFile is one component metadata file.
type InspectedComponentFile struct {
	Path   string `json:"path"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
	// Text is the file's content when it is UTF-8 text (component files are TOML or JSON).
	Text *string `json:"text,omitempty"`
}

// InspectedPayload is one payload: where it goes, where it is stored and how it is encoded.
type InspectedPayload struct {
	Index         int              `json:"index"`
	Delivery      string           `json:"delivery"` // slot, execute, app-file or app-archive
	Slot          string           `json:"slot,omitempty"`
	Handler       []string         `json:"handler,omitempty"`
	App           string           `json:"app,omitempty"`
	Path          string           `json:"path,omitempty"`
	Mode          *uint32          `json:"mode,omitempty"`
	FileHash      string           `json:"fileHash"`
	HeaderHash    string           `json:"headerHash"`
	DataOffset    int64            `json:"dataOffset"`
	DataSize      int64            `json:"dataSize"`
	BlockEncoding *InspectedBlocks `json:"blockEncoding,omitempty"`
	DeltaEncoding any              `json:"deltaEncoding,omitempty"`
	// Describe is PayloadInfo.Delivery: the delivery as rugix-bundler inspect names it.
	Describe string `json:"-"`
}

// InspectedBlocks is a payload's block encoding with its block statistics.
type InspectedBlocks struct {
	Chunker       string  `json:"chunker"`
	HashAlgorithm string  `json:"hashAlgorithm"`
	Deduplicated  bool    `json:"deduplicated"`
	Compression   string  `json:"compression,omitempty"`
	Blocks        int64   `json:"blocks"`
	StoredBlocks  int64   `json:"storedBlocks"`
	UniqueBlocks  int64   `json:"uniqueBlocks"`
	DedupRatio    float64 `json:"dedupRatio"`
	// DecodedMin and DecodedMax bound the decoded size the block encoding declares.
	DecodedMin int64 `json:"decodedMin"`
	DecodedMax int64 `json:"decodedMax"`
	// Error says why the block table could not be read; the statistics are then zero.
	Error string `json:"error,omitempty"`
}

// InspectedSignature is one embedded CMS signature, with its signers unchecked.
type InspectedSignature struct {
	Index   int      `json:"index"`
	Size    int      `json:"size"`
	Signers []string `json:"signers"`
}

// InspectFile opens the bundle at path and inspects it; see Bundle.Inspect.
func InspectFile(ctx context.Context, path string) (*Inspection, error) {
	b, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.Inspect(ctx), nil
}

// Inspect describes the bundle from its headers and block tables: no payload data is decoded.
// A block table that cannot be read is reported in the payload's InspectedBlocks.Error.
func (b *Bundle) Inspect(ctx context.Context) *Inspection {
	h := b.Header()
	out := &Inspection{Hash: b.Hash(), HashAlgorithm: string(b.alg), Size: b.size, Incremental: h.IsIncremental,
		HeaderSize: len(b.headerBytes), Manifest: h.Manifest, Payloads: []InspectedPayload{}, Signatures: []InspectedSignature{}}
	for i := range b.payloads {
		out.Payloads = append(out.Payloads, b.inspectPayload(ctx, &b.payloads[i]))
	}
	for i, der := range b.signatures {
		out.Signatures = append(out.Signatures, InspectedSignature{Index: i, Size: len(der), Signers: CMSSigners(der)})
	}
	if cs := h.Components; cs != nil {
		out.Components = &InspectedComponents{Files: []InspectedComponentFile{}, Tags: map[string]string{
			"BUNDLE_HEADER_COMPONENTS": cs.Tag.String(), "BUNDLE_COMPONENTS_FILE": cs.FileTag.String(),
			"BUNDLE_COMPONENT_FILE_PATH": cs.PathTag.String(), "BUNDLE_COMPONENT_FILE_DATA": cs.DataTag.String()}}
		for _, f := range cs.Files {
			sum := sha256.Sum256(f.Data)
			cf := InspectedComponentFile{Path: f.Path, Size: len(f.Data), SHA256: hex.EncodeToString(sum[:])}
			if utf8.Valid(f.Data) {
				t := string(f.Data)
				cf.Text = &t
			}
			out.Components.Files = append(out.Components.Files, cf)
		}
	}
	out.Warnings = append([]string{}, b.Warnings()...)
	return out
}

func (b *Bundle) inspectPayload(ctx context.Context, p *PayloadInfo) InspectedPayload {
	ip := InspectedPayload{Index: p.Index, Slot: p.Slot(), FileHash: Digest{Algorithm: b.alg, Sum: p.Entry.FileHash}.String(),
		HeaderHash: Digest{Algorithm: b.alg, Sum: p.Entry.HeaderHash}.String(), DataOffset: p.DataOffset, DataSize: p.DataSize,
		Describe: p.Delivery()}
	switch e := p.Entry; {
	case e.TypeSlot != nil:
		ip.Delivery = "slot"
	case e.TypeExecute != nil:
		ip.Delivery, ip.Handler = "execute", e.TypeExecute.Handler
	case e.TypeAppFile != nil:
		ip.Delivery, ip.App, ip.Path, ip.Mode = "app-file", e.TypeAppFile.App, e.TypeAppFile.Path, e.TypeAppFile.Mode
	case e.TypeAppArchive != nil:
		ip.Delivery, ip.App = "app-archive", e.TypeAppArchive.App
	}
	if p.Entry.DeltaEncoding != nil {
		ip.DeltaEncoding = p.Entry.DeltaEncoding
	}
	be := p.Header.BlockEncoding
	if be == nil {
		return ip
	}
	ib := &InspectedBlocks{Chunker: be.Chunker, HashAlgorithm: be.HashAlgorithm, Deduplicated: be.Deduplicated}
	if be.Compression != nil {
		ib.Compression = *be.Compression
	}
	if t, err := b.BlockTable(p.Index); err != nil {
		ib.Error = err.Error()
	} else if ib.UniqueBlocks, err = t.UniqueBlocks(ctx); err != nil {
		ib.Error = err.Error()
	} else {
		ib.Blocks, ib.StoredBlocks = t.Blocks, t.StoredBlocks
		if ib.Blocks > 0 {
			ib.DedupRatio = float64(ib.UniqueBlocks) / float64(ib.Blocks)
		}
		d := declared(p, t)
		ib.DecodedMin, ib.DecodedMax = d.Min, d.Max
	}
	ip.BlockEncoding = ib
	return ip
}
