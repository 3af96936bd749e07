// Package testkit holds the helpers that tests of several packages share: skipping loudly when
// an external tool is missing or the test needs root, running a program, hashing and writing files, and building a
// small ext4 image with mkfs.ext4.
//
// Only tests import it. It depends on the standard library and internal/tool alone, so that
// every other package's tests can use it without an import cycle; internal/tool's own tests
// therefore cannot. Helpers that need a domain package (a bundle, a project) live next to that
// package, in a small ...test package, not here.
package testkit

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/tool"
)

// Tool names an external program, or with an absolute Name a file, and the Debian package that
// provides it.
type Tool struct {
	Name, Package string
}

// NeedTool returns the path of the program name (found with tool.Find, so the sbin directories
// count) or skips the test loudly:
//
//	SKIPPING: <name> not installed (Debian package <pkg>); <what did not run>
//
// notRun, joined by spaces, says what did not run; without it the message says the test did not
// run.
func NeedTool(t testing.TB, name, debianPackage string, notRun ...string) string {
	t.Helper()
	return NeedTools(t, strings.Join(notRun, " "), Tool{name, debianPackage})[0]
}

// NeedFile returns path if it exists or skips the test loudly, as NeedTool does for programs
// (a firmware file, a GRUB module directory, a static busybox).
func NeedFile(t testing.TB, path, debianPackage string, notRun ...string) string {
	t.Helper()
	if !filepath.IsAbs(path) {
		t.Fatalf("testkit.NeedFile: %q is not an absolute path", path)
	}
	return NeedTools(t, strings.Join(notRun, " "), Tool{path, debianPackage})[0]
}

// NeedTools returns the paths of all tools, in order, or skips the test loudly, naming every
// missing one and its package at once. A Name that is an absolute path is a file that must
// exist; any other Name is a program found with tool.Find. notRun says what did not run.
func NeedTools(t testing.TB, notRun string, tools ...Tool) []string {
	t.Helper()
	paths := make([]string, len(tools))
	var names, pkgs []string
	for i, tl := range tools {
		if filepath.IsAbs(tl.Name) {
			if _, err := os.Stat(tl.Name); err == nil {
				paths[i] = tl.Name
				continue
			}
		} else if p, err := tool.Find(tl.Name, tl.Package); err == nil {
			paths[i] = p
			continue
		}
		names = append(names, tl.Name)
		if !contains(pkgs, tl.Package) {
			pkgs = append(pkgs, tl.Package)
		}
	}
	if len(names) == 0 {
		return paths
	}
	pkgWord := "package"
	if len(pkgs) > 1 {
		pkgWord = "packages"
	}
	t.Skipf("SKIPPING: %s not installed (Debian %s %s); %s", strings.Join(names, ", "), pkgWord, strings.Join(pkgs, " "), orDefault(notRun))
	return paths
}

// NeedRoot skips the test loudly unless it runs as root:
//
//	SKIPPING: <what> needs root; <what did not run>
func NeedRoot(t testing.TB, what string, notRun ...string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	t.Skipf("SKIPPING: %s needs root; %s", what, orDefault(strings.Join(notRun, " ")))
}

func orDefault(notRun string) string {
	if notRun == "" {
		return "this test did not run"
	}
	return notRun
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Run runs the program name with args and returns its combined output; it fails the test with
// the command line and the output when the program fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return RunCmd(t, exec.Command(name, args...))
}

// RunCmd runs a prepared command (with its Dir, Env or Stdin set) as Run does. Its Stdout and
// Stderr must be unset.
func RunCmd(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", cmd.Args[0], cmd.Args[1:], err, out)
	}
	return string(out)
}

// Must fails the test when err is not nil.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// SHA256File returns the hex SHA-256 of the file at path.
func SHA256File(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ReadFile returns the content of the file at path.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// WriteFile writes content to path (mode 0644), creating the missing parent directories.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
