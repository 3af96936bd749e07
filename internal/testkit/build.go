package testkit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// moduleRoot returns the nearest directory at or above the working directory (a test's
// package directory) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// RepoRoot returns the root of the otabake module (the directory with go.mod) seen from the
// test's package directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// GoBuild runs `go build [flags] -o out pkg` in the module root; the error carries the
// compiler's output. It needs no test, for binaries built once per test binary.
func GoBuild(out, pkg string, flags ...string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", out, pkg)...)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
	}
	return nil
}

// BuildOtabake builds the otabake CLI (./cmd/otabake) into dir and returns its path.
func BuildOtabake(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "otabake")
	if err := GoBuild(bin, "./cmd/otabake"); err != nil {
		t.Fatal(err)
	}
	return bin
}
