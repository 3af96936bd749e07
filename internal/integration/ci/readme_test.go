package ci

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"

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

// TestHelpComplete checks that every command and flag of otabake explains itself in --help,
// and that every top-level command is mentioned in the README.
func TestHelpComplete(t *testing.T) {
	app := cli.NewApp(strings.NewReader(""), io.Discard, io.Discard)
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, cmds []*ucli.Command)
	count := 0
	walk = func(prefix string, cmds []*ucli.Command) {
		for _, c := range cmds {
			if c.Name == "help" {
				continue
			}
			name := strings.TrimSpace(prefix + " " + c.Name)
			count++
			if c.Usage == "" {
				t.Errorf("otabake %s has no usage line", name)
			}
			for _, f := range c.Flags {
				if df, ok := f.(ucli.DocGenerationFlag); ok && df.GetUsage() == "" {
					t.Errorf("otabake %s: flag --%s has no usage", name, f.Names()[0])
				}
			}
			if prefix == "" && !strings.Contains(string(readme), "otabake "+c.Name) {
				t.Errorf("README.md never mentions 'otabake %s'", c.Name)
			}
			walk(name, c.Subcommands)
		}
	}
	walk("", app.Commands)
	t.Logf("checked the help of %d commands", count)
}
