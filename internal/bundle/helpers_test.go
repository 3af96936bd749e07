package bundle

import (
	"os"
	"testing"

	"github.com/otabake/otabake/internal/chunker"
)

func writeFileF(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

func readFileF(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustChunker(tb testing.TB, s string) chunker.Spec {
	tb.Helper()
	spec, err := chunker.ParseSpec(s)
	if err != nil {
		tb.Fatal(err)
	}
	return spec
}
