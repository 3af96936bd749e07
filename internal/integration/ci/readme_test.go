package ci

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/cli"
)

// shellBlock matches fenced shell code blocks in Markdown.
var shellBlock = regexp.MustCompile("(?s)```(?:sh|bash|shell)\n(.*?)```")

// TestReadmeCommands checks every otabake command line in the READMEs' shell blocks against
// the CLI, so that the documentation cannot name a command or flag that does not exist.
func TestReadmeCommands(t *testing.T) {
	app := cli.NewApp(strings.NewReader(""), io.Discard, io.Discard)
	total := 0
	for _, doc := range []string{"README.md", "examples/quickstart/README.md", "bitbake/meta-otabake/README.md"} {
		data, err := os.ReadFile(filepath.Join(repoRoot, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range shellBlock.FindAllStringSubmatch(string(data), -1) {
			var lines []string
			for _, l := range strings.Split(m[1], "\n") {
				if i := strings.Index(l, " #"); i >= 0 {
					l = l[:i] // a trailing comment
				}
				lines = append(lines, strings.ReplaceAll(l, "go run ./cmd/otabake", "otabake"))
			}
			invs, err := Invocations(strings.Join(lines, "\n"))
			if err != nil {
				t.Errorf("%s: %v", doc, err)
				continue
			}
			for _, inv := range invs {
				total++
				if _, _, err := Check(app, inv); err != nil {
					t.Errorf("%s: %q: %v", doc, inv.Line, err)
				}
			}
		}
	}
	if total < 20 {
		t.Fatalf("found only %d otabake command lines in the READMEs", total)
	}
	t.Logf("checked %d otabake command lines in the READMEs", total)
}
