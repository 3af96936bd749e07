package ci

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/otabake/otabake/internal/cli"
	"github.com/otabake/otabake/internal/testkit"
)

// fencedBlock matches fenced code blocks in Markdown, with their language.
var fencedBlock = regexp.MustCompile("(?ms)^[ \t]*```([A-Za-z]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$")

// codeSpan matches inline code in Markdown; it may wrap onto the next line.
var codeSpan = regexp.MustCompile("`([^`]+)`")

// goRunOtabake is how the READMEs run otabake from a checkout.
var goRunOtabake = regexp.MustCompile(`go run (?:-tags[= ]\S+ )?\./cmd/otabake( |$)`)

// optional strips the brackets of optional parts of the Markdown's command lines
// ("otabake config show [--json]", "otabake hub ls [REPO[/PKG[/TAG]]]"), so that they are
// checked with the optional part.
var optional = strings.NewReplacer("[", "", "]", "")

// docSkips are the documented otabake command lines that cannot be parsed as written: a
// placeholder stands for the command itself. Each must still be found in its file.
var docSkips = []struct{ file, line, why string }{
	{"README.md", "otabake COMMAND --help", "COMMAND stands for any command"},
}

// docCommand is one otabake command line found in the documentation.
type docCommand struct {
	file string
	inv  Invocation
	// mention is inline code that only names a command ("`otabake bake`" in a sentence): it
	// must name one, but need not give the command's required flags.
	mention bool
}

// docCommands returns the otabake command lines of the READMEs and docs (fenced shell blocks,
// command lines in other fenced blocks and inline code), of the CI templates' scripts
// (docs/ci/*.yml) and of the drop-in scripts (scripts/*.sh).
func docCommands(t *testing.T) []docCommand {
	t.Helper()
	var files []string
	for _, f := range []string{"README.md", "bitbake/meta-otabake/README.md"} {
		files = append(files, filepath.Join(testkit.RepoRoot(t), f))
	}
	for _, dir := range []string{"docs", "examples", "scripts"} {
		err := filepath.WalkDir(filepath.Join(testkit.RepoRoot(t), dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(testkit.RepoRoot(t), path)
			switch {
			case d.IsDir():
			case dir == "docs" && (strings.HasSuffix(path, ".md") || filepath.Dir(rel) == filepath.Join("docs", "ci") && strings.HasSuffix(path, ".yml")),
				dir == "examples" && strings.HasPrefix(d.Name(), "README"),
				dir == "scripts" && filepath.Dir(rel) == "scripts" && strings.HasSuffix(path, ".sh"):
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var out []docCommand
	add := func(file, script string, markdown, span bool) {
		invs, err := Invocations(script)
		if err != nil {
			t.Errorf("%s: %v in\n%s", file, err, script)
			return
		}
		for _, inv := range invs {
			if markdown {
				var args []string
				for _, a := range inv.Args {
					if a = optional.Replace(a); a != "" {
						args = append(args, a)
					}
				}
				inv.Args = args
			}
			mention := span
			for _, a := range inv.Args {
				if strings.HasPrefix(a, "-") {
					mention = false
				}
			}
			out = append(out, docCommand{file, inv, mention})
		}
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		file, _ := filepath.Rel(testkit.RepoRoot(t), path)
		text := string(data)
		switch {
		case strings.HasSuffix(path, ".sh"):
			add(file, text, false, false)
		case strings.HasSuffix(path, ".yml"):
			var doc any
			if err := yaml.Unmarshal(data, &doc); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			for _, script := range yamlScripts(doc, "") {
				add(file, ghExpr.ReplaceAllString(script, "GITHUB_EXPRESSION"), false, false)
			}
		default:
			text = goRunOtabake.ReplaceAllString(text, "otabake$1")
			for _, m := range fencedBlock.FindAllStringSubmatch(text, -1) {
				switch m[1] {
				case "sh", "bash", "shell":
					add(file, m[2], true, false)
				case "", "console", "text":
					add(file, commandLines(m[2]), true, false)
				}
			}
			for _, m := range codeSpan.FindAllStringSubmatch(fencedBlock.ReplaceAllString(text, ""), -1) {
				if span := strings.Join(strings.Fields(m[1]), " "); strings.HasPrefix(span, "otabake ") {
					add(file, span, true, true)
				}
			}
		}
	}
	return out
}

// commandLines keeps the lines of a non-shell block that run otabake ("otabake …" or
// "$ otabake …") with their continuation lines; the rest is output or prose.
func commandLines(block string) string {
	var b strings.Builder
	cont := false
	for _, l := range strings.Split(block, "\n") {
		l = strings.TrimSpace(l)
		l = strings.TrimPrefix(l, "$ ")
		if cont || strings.HasPrefix(l, "otabake ") {
			b.WriteString(l + "\n")
			cont = strings.HasSuffix(l, "\\")
		}
	}
	return b.String()
}

// yamlScripts returns the shell scripts of a CI template: the values of GitHub Actions' run
// and GitLab CI's script, before_script and after_script keys.
func yamlScripts(v any, key string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			out = append(out, yamlScripts(e, k)...)
		}
	case []any:
		for _, e := range v {
			out = append(out, yamlScripts(e, key)...)
		}
	case string:
		switch key {
		case "run", "script", "before_script", "after_script":
			out = append(out, v)
		}
	}
	return out
}

// TestReadmeCommands runs every otabake command line of the READMEs (README.md, the Yocto
// layer's, examples/**/README*), docs/**/*.md, the CI templates (docs/ci/*.yml) and the drop-in
// scripts (scripts/*.sh) through otabake's real parser (cli.Parse: no command runs), so that
// the documentation cannot show a command, a flag or a flag placement that fails with a usage
// error. Shell variables stay one word each ("$SYSTEM" is a SYSTEM); "$@" and array expansions,
// the scripts' own arguments, are left out; "[optional]" parts are checked as given; inline code
// that only names a command need not give its required flags; the lines of docSkips are skipped.
func TestReadmeCommands(t *testing.T) {
	cmds := docCommands(t)
	skipped := map[int]bool{}
	checked := map[string]bool{}
	total := 0
outer:
	for _, c := range cmds {
		for i, s := range docSkips {
			if c.file == s.file && strings.HasPrefix(c.inv.Line, s.line) {
				skipped[i] = true
				t.Logf("skipped %s: %q (%s)", c.file, c.inv.Line, s.why)
				continue outer
			}
		}
		total++
		if _, _, err := Check(c.inv); err != nil && !(c.mention && strings.Contains(err.Error(), "Required flag")) {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		checked[strings.Join(c.inv.Args, " ")] = true
	}
	for i, s := range docSkips {
		if !skipped[i] {
			t.Errorf("docSkips: %s no longer has %q; remove the skip", s.file, s.line)
		}
	}
	// The lines of issue 15 that failed as written.
	for _, want := range []string{"config show --json", "build-release --image-compression none vm"} {
		if !checked[want] {
			t.Errorf("the documentation no longer has 'otabake %s'", want)
		}
	}
	if total < 80 {
		t.Fatalf("found only %d otabake command lines in the documentation", total)
	}
	t.Logf("checked %d otabake command lines in the documentation, skipped %d", total, len(docSkips))
}

// TestHelpComplete checks that every command and flag of otabake explains itself in --help,
// and that every top-level command is mentioned in the README.
func TestHelpComplete(t *testing.T) {
	app := cli.NewApp(strings.NewReader(""), io.Discard, io.Discard)
	readme, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "README.md"))
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
