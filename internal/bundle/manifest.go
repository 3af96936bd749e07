package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/otabake/otabake/internal/chunker"
	"github.com/otabake/otabake/internal/schema"
)

// manifestDoc mirrors rugix-bundler's manifest schema (bundle/schemas/manifest.sidex). Field
// order is the JSON key order serde writes; pointer fields are optional keys, omitted when
// absent, exactly as sidex-serde omits None.
type manifestDoc struct {
	UpdateType    string            `json:"update-type" toml:"update-type"`
	HashAlgorithm *string           `json:"hash-algorithm,omitempty" toml:"hash-algorithm"`
	Payloads      []manifestPayload `json:"payloads" toml:"payloads"`
}

type manifestPayload struct {
	Delivery      manifestDelivery       `json:"delivery" toml:"delivery"`
	Filename      string                 `json:"filename" toml:"filename"`
	BlockEncoding *manifestBlockEncoding `json:"block-encoding,omitempty" toml:"block-encoding"`
	DeltaEncoding *manifestDeltaEncoding `json:"delta-encoding,omitempty" toml:"delta-encoding"`
}

type manifestDelivery struct {
	Type    string    `json:"type" toml:"type"`
	Slot    *string   `json:"slot,omitempty" toml:"slot"`
	Handler *[]string `json:"handler,omitempty" toml:"handler"`
}

type manifestBlockEncoding struct {
	Chunker       string               `json:"chunker" toml:"chunker"`
	HashAlgorithm *string              `json:"hash-algorithm,omitempty" toml:"hash-algorithm"`
	Deduplicate   *bool                `json:"deduplicate,omitempty" toml:"deduplicate"`
	Compression   *manifestCompression `json:"compression,omitempty" toml:"compression"`
}

type manifestCompression struct {
	Type  string `json:"type" toml:"type"`
	Level *int   `json:"level,omitempty" toml:"level"`
}

type manifestDeltaEncoding struct {
	Inputs       []manifestDeltaInput `json:"inputs" toml:"inputs"`
	Format       string               `json:"format" toml:"format"`
	OriginalHash string               `json:"original-hash" toml:"original-hash"`
}

type manifestDeltaInput struct {
	Hashes []string `json:"hashes" toml:"hashes"`
}

// manifestJSON renders the manifest as serde_json::to_string does for rugix-bundler.
func (s *Spec) manifestJSON() (string, error) {
	doc := s.manifest
	if doc == nil {
		doc = s.derivedManifest()
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // serde_json does not escape <, > and &
	if err := enc.Encode(doc); err != nil {
		return "", fmt.Errorf("encode manifest: %w", err)
	}
	return unescapeLineSeparators(strings.TrimSuffix(b.String(), "\n")), nil
}

// unescapeLineSeparators undoes the one escape encoding/json adds that serde_json does not:
// U+2028 and U+2029 are written raw by serde_json but as \u2028 and \u2029 by Go. Escape
// pairs are skipped as a whole so that an escaped backslash followed by "u2028" stays as is.
func unescapeLineSeparators(s string) string {
	if !strings.Contains(s, `\u202`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], `\u2028`):
			b.WriteString("\u2028")
			i += 5
		case strings.HasPrefix(s[i:], `\u2029`):
			b.WriteString("\u2029")
			i += 5
		default:
			b.WriteString(s[i : i+2])
			i++
		}
	}
	return b.String()
}

// derivedManifest builds the manifest a rugix-bundle.toml for this Spec would hold, writing
// optional keys only when they differ from their defaults.
func (s *Spec) derivedManifest() *manifestDoc {
	doc := &manifestDoc{UpdateType: "full", Payloads: []manifestPayload{}}
	if s.Incremental {
		doc.UpdateType = "incremental"
	}
	if s.HashAlgorithm != "" {
		n := s.HashAlgorithm.manifestName()
		doc.HashAlgorithm = &n
	}
	for _, p := range s.Payloads {
		mp := manifestPayload{Filename: p.name()}
		if p.Slot != "" {
			slot := p.Slot
			mp.Delivery = manifestDelivery{Type: "slot", Slot: &slot}
		} else {
			h := append([]string(nil), p.Handler...)
			mp.Delivery = manifestDelivery{Type: "execute", Handler: &h}
		}
		if be := p.BlockEncoding; be != nil {
			mbe := &manifestBlockEncoding{Chunker: be.Chunker}
			if spec, err := chunker.ParseSpec(be.Chunker); err == nil {
				mbe.Chunker = spec.String()
			}
			if be.HashAlgorithm != "" {
				n := be.HashAlgorithm.manifestName()
				mbe.HashAlgorithm = &n
			}
			if be.Deduplicate {
				t := true
				mbe.Deduplicate = &t
			}
			if c := be.Compression; c != nil {
				mbe.Compression = &manifestCompression{Type: "xz", Level: c.Level}
			}
			mp.BlockEncoding = mbe
		}
		if d := p.DeltaEncoding; d != nil {
			md := &manifestDeltaEncoding{Format: d.Format, OriginalHash: d.OriginalHash, Inputs: []manifestDeltaInput{}}
			for _, in := range d.Inputs {
				md.Inputs = append(md.Inputs, manifestDeltaInput{Hashes: append([]string{}, in.Hashes...)})
			}
			mp.DeltaEncoding = md
		}
		doc.Payloads = append(doc.Payloads, mp)
	}
	return doc
}

// ManifestFile is the name of the manifest in a bundle directory.
const ManifestFile = "rugix-bundle.toml"

// LoadDir reads DIR/rugix-bundle.toml the way rugix-bundler bundle does and returns the Spec
// for Create, with payloads read from DIR/payloads/. Warnings name keys that are ignored, such
// as the common misspelling "deduplication" (the key is "deduplicate"), because rugix-bundler
// silently ignores unknown keys and such bundles end up not deduplicated.
func LoadDir(dir string) (Spec, []string, error) {
	path := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, nil, fmt.Errorf("read bundle manifest: %w", err)
	}
	spec, warnings, err := parseManifest(data, filepath.Join(dir, "payloads"))
	if err != nil {
		return Spec{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return spec, warnings, nil
}

func parseManifest(data []byte, payloadDir string) (Spec, []string, error) {
	var doc manifestDoc
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		return Spec{}, nil, err
	}
	var warnings []string
	for _, k := range md.Undecoded() {
		w := fmt.Sprintf("unknown key %q is ignored (as rugix-bundler does)", k.String())
		if k[len(k)-1] == "deduplication" {
			w += `; the key is "deduplicate", so this payload is not deduplicated`
		}
		warnings = append(warnings, w)
	}
	if !md.IsDefined("update-type") {
		return Spec{}, nil, errors.New(`missing key "update-type"`)
	}
	if !md.IsDefined("payloads") {
		return Spec{}, nil, errors.New(`missing key "payloads"`)
	}
	spec := Spec{manifest: &doc}
	switch doc.UpdateType {
	case "full":
	case "incremental":
		spec.Incremental = true
	default:
		return Spec{}, nil, fmt.Errorf(`update-type %q: want "full" or "incremental"`, doc.UpdateType)
	}
	if doc.HashAlgorithm != nil {
		a, err := ParseHashAlgorithm(*doc.HashAlgorithm)
		if err != nil {
			return Spec{}, nil, fmt.Errorf("hash-algorithm: %w", err)
		}
		spec.HashAlgorithm = a
		n := a.manifestName()
		doc.HashAlgorithm = &n
	}
	for i := range doc.Payloads {
		mp := &doc.Payloads[i]
		p, err := mp.toPayload(payloadDir)
		if err != nil {
			return Spec{}, nil, fmt.Errorf("payloads[%d]: %w", i, err)
		}
		spec.Payloads = append(spec.Payloads, p)
	}
	if doc.Payloads == nil {
		doc.Payloads = []manifestPayload{}
	}
	// The checks above give the precise messages; the schema catches what they do not cover.
	// Unknown keys stay warnings, as rugix-bundler ignores them.
	if err := schema.Without(schema.ValidateTOML(schema.KindRugixBundle, data), "additionalProperties"); err != nil {
		return Spec{}, nil, err
	}
	return spec, warnings, nil
}

// toPayload validates one manifest payload, normalises the spellings serde would normalise
// (hash algorithm names, chunker, digests) and converts it.
func (mp *manifestPayload) toPayload(payloadDir string) (Payload, error) {
	if mp.Filename == "" || mp.Filename != filepath.Base(mp.Filename) || mp.Filename == "." || mp.Filename == ".." {
		return Payload{}, fmt.Errorf("filename %q: want a plain file name in payloads/", mp.Filename)
	}
	p := Payload{Filename: mp.Filename, Path: filepath.Join(payloadDir, mp.Filename)}
	switch mp.Delivery.Type {
	case "slot":
		if mp.Delivery.Slot == nil || *mp.Delivery.Slot == "" {
			return Payload{}, errors.New(`delivery type "slot" needs a slot`)
		}
		if mp.Delivery.Handler != nil {
			return Payload{}, errors.New(`delivery type "slot" takes no handler`)
		}
		p.Slot = *mp.Delivery.Slot
	case "execute":
		if mp.Delivery.Handler == nil || len(*mp.Delivery.Handler) == 0 {
			return Payload{}, errors.New(`delivery type "execute" needs a handler`)
		}
		if mp.Delivery.Slot != nil {
			return Payload{}, errors.New(`delivery type "execute" takes no slot`)
		}
		p.Handler = *mp.Delivery.Handler
	default:
		return Payload{}, fmt.Errorf(`delivery type %q: want "slot" or "execute"`, mp.Delivery.Type)
	}
	if mbe := mp.BlockEncoding; mbe != nil {
		spec, err := chunker.ParseSpec(mbe.Chunker)
		if err != nil {
			return Payload{}, fmt.Errorf("block-encoding: %w", err)
		}
		mbe.Chunker = spec.String()
		be := &BlockEncoding{Chunker: mbe.Chunker}
		if mbe.HashAlgorithm != nil {
			a, err := ParseHashAlgorithm(*mbe.HashAlgorithm)
			if err != nil {
				return Payload{}, fmt.Errorf("block-encoding: %w", err)
			}
			be.HashAlgorithm = a
			n := a.manifestName()
			mbe.HashAlgorithm = &n
		}
		if mbe.Deduplicate != nil {
			be.Deduplicate = *mbe.Deduplicate
		}
		if c := mbe.Compression; c != nil {
			if c.Type != "xz" {
				return Payload{}, fmt.Errorf(`block-encoding compression type %q: want "xz"`, c.Type)
			}
			if c.Level != nil && (*c.Level < 0 || *c.Level > 9) {
				return Payload{}, fmt.Errorf("block-encoding compression level %d: want 0–9", *c.Level)
			}
			be.Compression = &Compression{Level: c.Level}
		}
		p.BlockEncoding = be
	}
	if md := mp.DeltaEncoding; md != nil {
		if md.Format != "xdelta" {
			return Payload{}, fmt.Errorf(`delta-encoding format %q: want "xdelta"`, md.Format)
		}
		d := &DeltaEncoding{Format: md.Format}
		oh, err := ParseDigest(md.OriginalHash)
		if err != nil {
			return Payload{}, fmt.Errorf("delta-encoding original-hash: %w", err)
		}
		md.OriginalHash = oh.String()
		d.OriginalHash = md.OriginalHash
		if md.Inputs == nil {
			md.Inputs = []manifestDeltaInput{}
		}
		for i := range md.Inputs {
			in := DeltaEncodingInput{}
			for j, h := range md.Inputs[i].Hashes {
				dg, err := ParseDigest(h)
				if err != nil {
					return Payload{}, fmt.Errorf("delta-encoding inputs[%d]: %w", i, err)
				}
				md.Inputs[i].Hashes[j] = dg.String()
				in.Hashes = append(in.Hashes, dg.String())
			}
			if md.Inputs[i].Hashes == nil {
				md.Inputs[i].Hashes = []string{}
			}
			d.Inputs = append(d.Inputs, in)
		}
		p.DeltaEncoding = d
	}
	return p, nil
}

// DefaultChunker is the block encoding CreateFromDirWith gives payloads whose manifest has
// none: casync-64 is what Rugix Bakery writes and what devices index their slots with.
const DefaultChunker = "casync-64"

// DirOptions select how CreateFromDirWith reads a bundle directory.
type DirOptions struct {
	// WithoutCompression drops every payload's compression (and from the manifest), like Rugix
	// Bakery's --without-compression.
	WithoutCompression bool
	// NoBlockIndex keeps payloads without block-encoding as they are. Otherwise every payload
	// Rugix Ctrl >= 1.2 refuses without a block index (see PayloadInfo.NeedsBlockIndex) gets
	// `chunker = "casync-64"`, in the manifest too, so rugix-bundler given the same
	// rugix-bundle.toml with that line added writes the same bundle.
	NoBlockIndex bool
}

// CreateFromDir builds the bundle of a rugix-bundler directory exactly as its manifest says
// (no block encoding added); see CreateFromDirWith.
func CreateFromDir(ctx context.Context, dir, outPath string, withoutCompression bool, opts CreateOptions) (*Result, []string, error) {
	return CreateFromDirWith(ctx, dir, outPath, DirOptions{WithoutCompression: withoutCompression, NoBlockIndex: true}, opts)
}

// CreateFromDirWith builds the bundle of a rugix-bundler directory (DIR/rugix-bundle.toml and
// DIR/payloads/) like `rugix-bundler bundle DIR OUT`, with the changes d asks for. The
// warnings say what was ignored, added or is refused by today's devices.
func CreateFromDirWith(ctx context.Context, dir, outPath string, d DirOptions, opts CreateOptions) (*Result, []string, error) {
	spec, warnings, err := LoadDir(dir)
	if err != nil {
		return nil, warnings, err
	}
	if d.WithoutCompression {
		for i := range spec.Payloads {
			if be := spec.Payloads[i].BlockEncoding; be != nil {
				be.Compression = nil
				spec.manifest.Payloads[i].BlockEncoding.Compression = nil
			}
		}
	}
	for i := range spec.Payloads {
		p := &spec.Payloads[i]
		if p.BlockEncoding != nil || p.Slot == "" { // execute payloads need no block index
			continue
		}
		if d.NoBlockIndex {
			warnings = append(warnings, fmt.Sprintf("payloads[%d] (%s) has no block-encoding: Rugix Ctrl >= 1.2 refuses to install it unless run with --insecure-allow-missing-block-index", i, p.name()))
			continue
		}
		p.BlockEncoding = &BlockEncoding{Chunker: DefaultChunker}
		spec.manifest.Payloads[i].BlockEncoding = &manifestBlockEncoding{Chunker: DefaultChunker}
		warnings = append(warnings, fmt.Sprintf("payloads[%d] (%s) has no block-encoding in %s: added chunker = %q, because Rugix Ctrl >= 1.2 refuses bundles without a block index (--no-block-index keeps it out)", i, p.name(), ManifestFile, DefaultChunker))
	}
	res, err := Create(ctx, outPath, spec, opts)
	return res, warnings, err
}
