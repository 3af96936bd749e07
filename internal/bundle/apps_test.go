package bundle

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/bundle/stlv"
)

var updateFixtures = flag.Bool("update", false, "rewrite testdata fixtures")

// Placeholder tags for the 1.x atoms whose values no published source gives (tags.go): the
// reader recognises those atoms by position and shape, so any tag that is not one of the
// known ones must work. These were drawn at random as upstream's tags.rs describes.
const (
	testTagComponents stlv.Tag = 0x2d7a91c4
	testTagCompFile   stlv.Tag = 0x0e5b3f61
	testTagCompPath   stlv.Tag = 0x6c1d08a9
	testTagCompData   stlv.Tag = 0x3b96e27d
	testTagAppMode    stlv.Tag = 0x1f4c7a52
)

type testComponents struct {
	Files []testComponentFile `stlv:"0x0e5b3f61"`
}

type testComponentFile struct {
	Path string `stlv:"0x6c1d08a9"`
	Data []byte `stlv:"0x3b96e27d"`
}

// appBundle describes a hand-made 1.x bundle: what rugix-bundler's main branch writes for an
// app bundle with components/, built with this package's own STLV encoder.
type appBundle struct {
	components    []testComponentFile // nil: no components segment
	componentsTag stlv.Tag
	mode          *uint32
	edit          func(h *Header)         // changes the header before encoding
	rawEdit       func(hdr []byte) []byte // changes the encoded header
	blockEncoding *BlockEncoding          // of every payload
	between       []byte                  // atoms between the header and PAYLOADS
}

// makeAppBundle writes a bundle with an app-file, an app-archive and a slot payload.
func makeAppBundle(t testing.TB, dir string, ab appBundle) string {
	t.Helper()
	var payloads []Payload
	for i, data := range [][]byte{[]byte("#!/bin/sh\necho app\n"), testData(16<<10, 7), testData(32<<10, 8)} {
		p := filepath.Join(dir, "p"+string(rune('0'+i)))
		writeFileF(t, p, data)
		payloads = append(payloads, Payload{Slot: "x", Path: p, BlockEncoding: ab.blockEncoding})
	}
	plain := filepath.Join(dir, "plain.rugixb")
	if _, err := Create(context.Background(), plain, Spec{Payloads: payloads, OmitManifest: true}, CreateOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	b, err := Open(plain)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h := *b.Header()
	h.Payloads = append([]PayloadEntry(nil), h.Payloads...)
	h.Payloads[0].TypeSlot, h.Payloads[0].TypeAppFile = nil, &AppFileType{App: "hello", Path: "bin/hello"}
	h.Payloads[1].TypeSlot, h.Payloads[1].TypeAppArchive = nil, &AppArchiveType{App: "hello"}
	if ab.edit != nil {
		ab.edit(&h)
	}
	hdr, err := stlv.Marshal(TagBundleHeader, &h)
	if err != nil {
		t.Fatal(err)
	}
	if ab.components != nil {
		tag := ab.componentsTag
		if tag == 0 {
			tag = testTagComponents
		}
		seg, err := stlv.Marshal(tag, &testComponents{Files: ab.components})
		if err != nil {
			t.Fatal(err)
		}
		hdr = insertAfter(t, hdr, stlv.AppendValue(nil, TagBundleHeaderHashAlgorithm, []byte(h.HashAlgorithm)), seg)
	}
	if ab.mode != nil {
		m := binary.BigEndian.AppendUint32(nil, *ab.mode)
		hdr = insertAfter(t, hdr, stlv.AppendValue(nil, TagPayloadTypeAppFilePath, []byte("bin/hello")), stlv.AppendValue(nil, testTagAppMode, m))
	}
	if ab.rawEdit != nil {
		hdr = ab.rawEdit(hdr)
	}
	out := stlv.AppendStart(nil, TagBundle)
	out = append(out, hdr...)
	out = append(out, ab.between...)
	rest := make([]byte, b.Size()-b.payloadsOffset)
	if _, err := b.r.ReadAt(rest, b.payloadsOffset); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.rugixb")
	writeFileF(t, path, append(out, rest...))
	return path
}

func insertAfter(t testing.TB, s, after, ins []byte) []byte {
	t.Helper()
	i := bytes.Index(s, after)
	if i < 0 {
		t.Fatalf("%x not found", after)
	}
	i += len(after)
	return append(append(append([]byte(nil), s[:i]...), ins...), s[i:]...)
}

func u32(v uint32) *uint32 { return &v }

var testComponentFiles = []testComponentFile{
	{Path: "system.toml", Data: []byte("[component]\nname = \"hello\"\n")},
	{Path: "hw/board.json", Data: []byte(`{"board":"rpi4"}`)},
}

func TestAppPayloadsAndComponents(t *testing.T) {
	casync := &BlockEncoding{Chunker: "casync-1", Deduplicate: true}
	optional := []byte{0x9a, 0x0b, 0x0c, 0x0d, 0x83, 'o', 'p', 't'} // unknown optional value
	for _, tc := range []struct {
		name       string
		ab         appBundle
		wantFiles  int
		wantMode   *uint32
		wantNoIdx  []int
		wantErr    string
		wantVerify bool
	}{
		{name: "app payloads", ab: appBundle{blockEncoding: casync}, wantVerify: true},
		{name: "app payloads, components and mode", ab: appBundle{blockEncoding: casync, components: testComponentFiles, mode: u32(0o755)},
			wantFiles: 2, wantMode: u32(0o755), wantVerify: true},
		{name: "empty components", ab: appBundle{blockEncoding: casync, components: []testComponentFile{}}, wantVerify: true},
		{name: "components under an optional tag", ab: appBundle{blockEncoding: casync, components: testComponentFiles, componentsTag: 0xad7a91c4},
			wantFiles: 2, wantVerify: true},
		{name: "no block index", ab: appBundle{components: testComponentFiles}, wantFiles: 2, wantNoIdx: []int{0, 1, 2}, wantVerify: true},
		{name: "unknown optional tags skipped", ab: appBundle{blockEncoding: casync, between: optional, rawEdit: func(h []byte) []byte {
			h = insertAfter(t, h, stlv.AppendStart(nil, TagBundleHeader), optional)
			return insertAfter(t, h, stlv.AppendStart(nil, TagBundleHeaderPayloadIndex), optional)
		}}, wantVerify: true},
		{name: "unknown required tag in the header", ab: appBundle{rawEdit: func(h []byte) []byte {
			return insertAfter(t, h, stlv.AppendStart(nil, TagBundleHeader), stlv.AppendValue(nil, 0x1a0b0c0d, []byte("x")))
		}}, wantErr: "unknown tag 0x1a0b0c0d"},
		{name: "unknown required segment after the payload index is not components", ab: appBundle{rawEdit: func(h []byte) []byte {
			seg, _ := stlv.Marshal(testTagComponents, &testComponents{Files: testComponentFiles})
			return append(append([]byte(nil), h[:len(h)-5]...), append(seg, h[len(h)-5:]...)...)
		}}, wantErr: "unknown tag " + testTagComponents.String()},
		{name: "components path escapes", ab: appBundle{components: []testComponentFile{{Path: "../etc/passwd", Data: []byte("x")}}}, wantErr: `path "../etc/passwd"`},
		{name: "components path twice", ab: appBundle{components: []testComponentFile{{Path: "a", Data: nil}, {Path: "a", Data: nil}}}, wantErr: "appears twice"},
		{name: "app-file path escapes", ab: appBundle{edit: func(h *Header) { h.Payloads[0].TypeAppFile.Path = "/etc/shadow" }}, wantErr: `app-file path "/etc/shadow"`},
		{name: "app name with a slash", ab: appBundle{edit: func(h *Header) { h.Payloads[1].TypeAppArchive.App = "a/b" }}, wantErr: `app-archive app name "a/b"`},
		{name: "mode too large", ab: appBundle{mode: u32(0o170755)}, wantErr: "is not a file mode"},
		{name: "two delivery types", ab: appBundle{edit: func(h *Header) { h.Payloads[0].TypeSlot = &SlotType{Slot: "system"} }}, wantErr: "payload 0 has 2 delivery types"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := makeAppBundle(t, t.TempDir(), tc.ab)
			b, err := Open(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			h := b.Header()
			if got := b.Payloads()[0].Delivery(); !strings.HasPrefix(got, `app-file(app="hello" path="bin/hello"`) {
				t.Errorf("payload 0 delivery %s", got)
			}
			if got := b.Payloads()[1].Delivery(); got != `app-archive(app="hello")` {
				t.Errorf("payload 1 delivery %s", got)
			}
			if m := h.Payloads[0].TypeAppFile.Mode; (m == nil) != (tc.wantMode == nil) || m != nil && *m != *tc.wantMode {
				t.Errorf("mode %v, want %v", m, tc.wantMode)
			}
			if tc.ab.components == nil {
				if h.Components != nil {
					t.Errorf("components %+v in a bundle without them", h.Components)
				}
			} else if h.Components == nil || len(h.Components.Files) != tc.wantFiles {
				t.Fatalf("components %+v, want %d files", h.Components, tc.wantFiles)
			} else {
				for i, f := range h.Components.Files {
					if f.Path != tc.ab.components[i].Path || !bytes.Equal(f.Data, tc.ab.components[i].Data) {
						t.Errorf("component file %d: %q %q", i, f.Path, f.Data)
					}
				}
				if tc.wantFiles > 0 && (h.Components.FileTag != testTagCompFile || h.Components.PathTag != testTagCompPath || h.Components.DataTag != testTagCompData) {
					t.Errorf("component tags %+v", h.Components)
				}
			}
			if got := b.MissingBlockIndex(); !equalInts(got, tc.wantNoIdx) {
				t.Errorf("MissingBlockIndex %v, want %v", got, tc.wantNoIdx)
			}
			if len(b.Warnings()) != len(tc.wantNoIdx) {
				t.Errorf("warnings %q", b.Warnings())
			}
			rep, err := b.Verify(context.Background(), VerifyOptions{BundleHash: b.Hash()})
			if (err == nil) != tc.wantVerify {
				t.Fatalf("Verify: %v", err)
			}
			if len(rep.Payloads) != 3 || len(rep.Warnings) != len(tc.wantNoIdx) {
				t.Fatalf("verify report %+v", rep)
			}
			if hb, _ := HashFile(path); hb != b.Hash() {
				t.Errorf("HashFile %s, Open %s", hb, b.Hash())
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// appFixture is testdata/app-components.rugixb: the bundle of TestAppPayloadsAndComponents'
// main case, for the CLI tests and the fuzz seeds. go test -run TestAppFixture -update
// rewrites it; otherwise the test checks it is still what the builder makes.
const appFixture = "testdata/app-components.rugixb"

func TestAppFixture(t *testing.T) {
	path := makeAppBundle(t, t.TempDir(), appBundle{blockEncoding: &BlockEncoding{Chunker: "casync-1", Deduplicate: true}, components: testComponentFiles, mode: u32(0o755)})
	data := readFileF(t, path)
	if *updateFixtures {
		writeFileF(t, appFixture, data)
	}
	if old, err := os.ReadFile(appFixture); err != nil || !bytes.Equal(old, data) {
		t.Fatalf("%s is stale or missing (%v); run go test -run TestAppFixture -update", appFixture, err)
	}
}
