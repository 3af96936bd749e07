package bundle

import (
	"encoding/binary"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/otabake/otabake/internal/bundle/stlv"
)

// Components is the component metadata a bundle declares for Rugix Ctrl's compatibility
// checks (Rugix main branch; rugix/rugix CHANGELOG.md, Unreleased: "Allow update bundles to
// carry declared component metadata for compatibility checks"): the files of the bundle
// directory's components/, each with its path relative to it and its raw bytes
// (BundleComponents and BundleComponentFile in rugix/rugix
// crates/libs/rugix-bundle/src/format/mod.rs).
type Components struct {
	Files []ComponentFile
	// Tag, FileTag, PathTag and DataTag are the tags this bundle uses for
	// BUNDLE_HEADER_COMPONENTS, BUNDLE_COMPONENTS_FILE, BUNDLE_COMPONENT_FILE_PATH and
	// BUNDLE_COMPONENT_FILE_DATA, as found (see recognise).
	Tag, FileTag, PathTag, DataTag stlv.Tag
}

// ComponentFile is one component metadata file.
type ComponentFile struct {
	Path string
	Data []byte
}

// recognised is what recognise found in a header segment outside the codec's tag tables.
type recognised struct {
	// clean is the header segment without the recognised atoms: what the codec decodes.
	// Segments carry no lengths, so cutting atoms out leaves a well-formed segment.
	clean      []byte
	components *Components
	modes      map[int]uint32   // payload entry index → app-file mode
	modeTags   map[int]stlv.Tag // payload entry index → the tag it was found under
}

// span is one atom of a segment: head at start, body from body to end (a value's bytes, or a
// segment's children and its end atom).
type span struct {
	h                stlv.Head
	start, body, end int
}

// children lists the atoms directly inside the segment tag whose body starts at off, and
// returns the offset after its end atom.
func children(seg []byte, off int, tag stlv.Tag, depth int) ([]span, int, error) {
	if depth > stlv.MaxDepth {
		return nil, 0, fmt.Errorf("offset %d: segments nested deeper than %d", off, stlv.MaxDepth)
	}
	var out []span
	for {
		h, n, err := stlv.ParseHead(seg[off:])
		if err != nil {
			return nil, 0, fmt.Errorf("offset %d: %w", off, err)
		}
		s := span{h: h, start: off, body: off + n}
		switch h.Kind {
		case stlv.End:
			if h.Tag != tag {
				return nil, 0, fmt.Errorf("offset %d: end of %s where %s is open", off, h.Tag, tag)
			}
			return out, off + n, nil
		case stlv.Value:
			if h.Len > uint64(len(seg)-s.body) {
				return nil, 0, fmt.Errorf("offset %d: %w", s.body, stlv.ErrTruncated)
			}
			s.end = s.body + int(h.Len)
		case stlv.Start:
			if _, s.end, err = children(seg, s.body, h.Tag, depth+1); err != nil {
				return nil, 0, err
			}
		}
		out = append(out, s)
		off = s.end
	}
}

// recognise finds the two 1.x atoms whose tag values no published source gives, where
// upstream's encoder writes them (define_struct! writes fields in declaration order,
// rugix/rugix crates/libs/rugix-bundle/src/format/macros.rs and mod.rs):
//   - BundleHeader.components: a segment right after the hash algorithm value, with an unknown
//     tag, holding only segments of one tag, each holding exactly two values of two tags,
//     the first valid UTF-8 (path, then data);
//   - AppFilePayloadType.mode: inside an app-file segment, a 4-byte value (u32) with an unknown
//     tag right after the path value.
//
// Anything else stays as it is, so an unknown required tag still fails decoding as the STLV
// rules demand. recognise never fails: on malformed input it returns the segment unchanged
// and leaves the error to the decoder.
func recognise(seg []byte) recognised {
	r := recognised{clean: seg}
	h, n, err := stlv.ParseHead(seg)
	if err != nil || h.Kind != stlv.Start || h.Tag != TagBundleHeader {
		return r
	}
	top, _, err := children(seg, n, TagBundleHeader, 1)
	if err != nil {
		return r
	}
	headerTags := map[stlv.Tag]bool{TagBundleHeaderManifest: true, TagBundleHeaderIsIncremental: true,
		TagBundleHeaderHashAlgorithm: true, TagBundleHeaderPayloadIndex: true}
	var cuts [][2]int
	entry := 0
	for i, a := range top {
		if a.h.Kind != stlv.Start {
			continue
		}
		if !headerTags[a.h.Tag] && i > 0 && top[i-1].h.Kind == stlv.Value && top[i-1].h.Tag == TagBundleHeaderHashAlgorithm && r.components == nil {
			if c := componentsAt(seg, a); c != nil {
				r.components = c
				cuts = append(cuts, [2]int{a.start, a.end})
			}
			continue
		}
		if a.h.Tag != TagBundleHeaderPayloadIndex {
			continue
		}
		k := entry
		entry++
		fields, _, err := children(seg, a.body, a.h.Tag, 2)
		if err != nil {
			continue
		}
		for _, f := range fields {
			if f.h.Kind != stlv.Start || f.h.Tag != TagPayloadEntryTypeAppFile {
				continue
			}
			af, _, err := children(seg, f.body, f.h.Tag, 3)
			if err != nil {
				continue
			}
			for j := 1; j < len(af); j++ {
				m, prev := af[j], af[j-1]
				if prev.h.Kind == stlv.Value && prev.h.Tag == TagPayloadTypeAppFilePath && m.h.Kind == stlv.Value && m.h.Len == 4 &&
					m.h.Tag != TagPayloadTypeAppFileApp && m.h.Tag != TagPayloadTypeAppFilePath {
					if r.modes == nil {
						r.modes, r.modeTags = map[int]uint32{}, map[int]stlv.Tag{}
					}
					r.modes[k] = binary.BigEndian.Uint32(seg[m.body:m.end])
					r.modeTags[k] = m.h.Tag
					cuts = append(cuts, [2]int{m.start, m.end})
					break
				}
			}
		}
	}
	if len(cuts) == 0 {
		return r
	}
	clean := make([]byte, 0, len(seg))
	at := 0
	for _, c := range cuts {
		clean = append(clean, seg[at:c[0]]...)
		at = c[1]
	}
	r.clean = append(clean, seg[at:]...)
	return r
}

// componentsAt decodes a as BundleComponents if it has that shape, else returns nil.
func componentsAt(seg []byte, a span) *Components {
	files, _, err := children(seg, a.body, a.h.Tag, 2)
	if err != nil {
		return nil
	}
	c := &Components{Tag: a.h.Tag, Files: []ComponentFile{}}
	for i, f := range files {
		if f.h.Kind != stlv.Start || f.h.Tag == a.h.Tag || i > 0 && f.h.Tag != c.FileTag {
			return nil
		}
		c.FileTag = f.h.Tag
		kv, _, err := children(seg, f.body, f.h.Tag, 3)
		if err != nil || len(kv) != 2 || kv[0].h.Kind != stlv.Value || kv[1].h.Kind != stlv.Value || kv[0].h.Tag == kv[1].h.Tag {
			return nil
		}
		if i > 0 && (kv[0].h.Tag != c.PathTag || kv[1].h.Tag != c.DataTag) {
			return nil
		}
		c.PathTag, c.DataTag = kv[0].h.Tag, kv[1].h.Tag
		p := seg[kv[0].body:kv[0].end]
		if !utf8.Valid(p) {
			return nil
		}
		c.Files = append(c.Files, ComponentFile{Path: string(p), Data: append([]byte(nil), seg[kv[1].body:kv[1].end]...)})
	}
	if t := []stlv.Tag{c.FileTag, c.PathTag, c.DataTag}; len(files) > 0 && (t[0] == t[1] || t[0] == t[2]) {
		return nil
	}
	return c
}

// validRelPath reports whether p is a safe relative path: not empty, not absolute, no empty,
// "." or ".." elements, no NUL (Rugix Ctrl confines app and component paths the same way,
// rugix/rugix crates/apps/rugix-ctrl/src/operations/install/apps.rs, ValidatedRelativePath).
func validRelPath(p string) bool {
	return p != "" && !strings.ContainsRune(p, 0) && !strings.HasPrefix(p, "/") && path.Clean(p) == p && p != "." &&
		p != ".." && !strings.HasPrefix(p, "../")
}

// validAppName reports whether s can name an app directory.
func validAppName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// checkEntries validates what the header says about deliveries: exactly one delivery type per
// payload, app names and paths that stay inside the app's generation directory, file modes
// that are modes, and component paths that stay inside components/.
func checkEntries(h *Header) error {
	for i, e := range h.Payloads {
		n := 0
		for _, set := range []bool{e.TypeSlot != nil, e.TypeExecute != nil, e.TypeAppFile != nil, e.TypeAppArchive != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("payload %d has %d delivery types, want exactly one", i, n)
		}
		switch {
		case e.TypeAppFile != nil:
			f := e.TypeAppFile
			if !validAppName(f.App) {
				return fmt.Errorf("payload %d: app-file app name %q", i, f.App)
			}
			if !validRelPath(f.Path) {
				return fmt.Errorf("payload %d: app-file path %q: want a relative path inside the app's generation directory", i, f.Path)
			}
			if f.Mode != nil && *f.Mode > 0o7777 {
				return fmt.Errorf("payload %d: app-file mode %#o is not a file mode", i, *f.Mode)
			}
		case e.TypeAppArchive != nil:
			if !validAppName(e.TypeAppArchive.App) {
				return fmt.Errorf("payload %d: app-archive app name %q", i, e.TypeAppArchive.App)
			}
		}
	}
	if c := h.Components; c != nil {
		seen := map[string]bool{}
		for i, f := range c.Files {
			if !validRelPath(f.Path) {
				return fmt.Errorf("components: file %d: path %q: want a relative path inside components/", i, f.Path)
			}
			if seen[f.Path] {
				return fmt.Errorf("components: file %d: path %q appears twice", i, f.Path)
			}
			seen[f.Path] = true
		}
	}
	return nil
}

// Delivery describes where payload p goes, as rugix-bundler inspect names it: slot="system",
// execute(argv), app-file(app, path[, mode]) or app-archive(app).
func (p *PayloadInfo) Delivery() string {
	e := p.Entry
	switch {
	case e.TypeSlot != nil:
		return fmt.Sprintf("slot=%q", e.TypeSlot.Slot)
	case e.TypeExecute != nil:
		return fmt.Sprintf("execute(%s)", strings.Join(e.TypeExecute.Handler, " "))
	case e.TypeAppFile != nil:
		s := fmt.Sprintf("app-file(app=%q path=%q", e.TypeAppFile.App, e.TypeAppFile.Path)
		if e.TypeAppFile.Mode != nil {
			s += fmt.Sprintf(" mode=%#o", *e.TypeAppFile.Mode)
		}
		return s + ")"
	case e.TypeAppArchive != nil:
		return fmt.Sprintf("app-archive(app=%q)", e.TypeAppArchive.App)
	}
	return "unknown"
}

// NeedsBlockIndex reports whether Rugix Ctrl ≥ 1.2 refuses payload p without a block index
// (unless --insecure-allow-missing-block-index): slot payloads (rugix/rugix
// crates/apps/rugix-ctrl/src/operations/install/system.rs) and app-file and app-archive
// payloads (…/install/apps.rs). Execute payloads are decoded without one.
func (p *PayloadInfo) NeedsBlockIndex() bool { return p.Entry.TypeExecute == nil }

// MissingBlockIndex lists the payloads Rugix Ctrl ≥ 1.2 refuses because they need a block
// index and have none.
func (b *Bundle) MissingBlockIndex() []int {
	var out []int
	for i := range b.payloads {
		if p := &b.payloads[i]; p.NeedsBlockIndex() && p.Header.BlockEncoding == nil {
			out = append(out, i)
		}
	}
	return out
}

// Warnings lists what a device running today's Rugix Ctrl would refuse although the bundle is
// well formed: payloads without a block index ("payload N does not have a block index,
// refusing to install", Rugix Ctrl 1.2.0, rugix/rugix CHANGELOG.md).
func (b *Bundle) Warnings() []string {
	var out []string
	for _, i := range b.MissingBlockIndex() {
		out = append(out, fmt.Sprintf("payload %d (%s) has no block index: Rugix Ctrl >= 1.2 refuses to install it "+
			"(\"payload %d does not have a block index, refusing to install\") unless run with --insecure-allow-missing-block-index; "+
			"add [payloads.block-encoding] chunker = \"casync-64\" to rugix-bundle.toml", i, b.payloads[i].Delivery(), i))
	}
	return out
}
