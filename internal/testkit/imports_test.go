package testkit

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsStayLow keeps testkit importable by every package's tests: besides the standard
// library it may import internal/tool only (whose own tests therefore cannot use testkit).
func TestImportsStayLow(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if p != "github.com/otabake/otabake/internal/tool" && strings.Contains(first, ".") {
				t.Errorf("%s imports %s: testkit may import the standard library and internal/tool only", f, p)
			}
		}
	}
}
