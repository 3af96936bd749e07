package sbom

import (
	"bytes"
	"os"
	"testing"
)

func fuzzParser(f *testing.F, seed string, parse func([]byte) ([]Package, error)) {
	if data, err := os.ReadFile(seed); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := parse(data)
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if p.Name == "" {
				t.Fatalf("package without a name: %+v", p)
			}
		}
		// Whatever parses must also make a document tools-golang reads back.
		doc := Build(pkgs, "", Options{System: "s", Version: "1", Created: created})
		if len(doc.Packages) != len(pkgs)+1 {
			t.Fatalf("%d packages in document, %d parsed", len(doc.Packages), len(pkgs))
		}
	})
}

func FuzzParseDpkgStatus(f *testing.F) {
	fuzzParser(f, "testdata/dpkg/var/lib/dpkg/status", func(b []byte) ([]Package, error) { return ParseDpkgStatus(bytes.NewReader(b)) })
}

func FuzzParseOpkgStatus(f *testing.F) {
	fuzzParser(f, "testdata/opkg/var/lib/opkg/status", func(b []byte) ([]Package, error) { return ParseOpkgStatus(bytes.NewReader(b)) })
}

func FuzzParseAPKInstalled(f *testing.F) {
	fuzzParser(f, "testdata/apk/lib/apk/db/installed", func(b []byte) ([]Package, error) { return ParseAPKInstalled(bytes.NewReader(b)) })
}
