package agentbuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sourceDir(t *testing.T) string {
	t.Helper()
	src, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestBuildReproducibleNoRewrite builds the released architectures twice: the second build
// rewrites nothing (same bytes, same modification times, same SHA256SUMS), which is what keeps
// a Bakery layer holding the agent from rebuilding on every release; armhf is an ARMv6 build.
func TestBuildReproducibleNoRewrite(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles otabake-agent")
	}
	dir := t.TempDir()
	opts := Options{Source: sourceDir(t), Version: "1.2.3"}
	first, err := BuildAll(context.Background(), opts, Names(), dir)
	if err != nil {
		t.Fatal(err)
	}
	mtimes := map[string]time.Time{}
	for _, r := range first {
		if !r.Written {
			t.Errorf("%s: first build wrote nothing", r.Path)
		}
		st, err := os.Stat(r.Path)
		if err != nil {
			t.Fatal(err)
		}
		mtimes[r.Path] = st.ModTime()
	}
	sums, err := os.ReadFile(filepath.Join(dir, ChecksumsFile))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseChecksums(sums)
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed) != len(Arches) {
		t.Errorf("%s lists %d files, want %d:\n%s", ChecksumsFile, len(parsed), len(Arches), sums)
	}
	// Old enough that a rewrite would show in the modification time.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	for p := range mtimes {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	sumsPath := filepath.Join(dir, ChecksumsFile)
	if err := os.Chtimes(sumsPath, old, old); err != nil {
		t.Fatal(err)
	}

	second, err := BuildAll(context.Background(), opts, Names(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range second {
		if r.Written {
			t.Errorf("%s: second build rewrote an identical file", r.Path)
		}
		if r.SHA256 != first[i].SHA256 {
			t.Errorf("%s: not reproducible: %s then %s", r.Path, first[i].SHA256, r.SHA256)
		}
		if parsed[FileName(r.Arch)] != r.SHA256 {
			t.Errorf("%s: %s says %s, file is %s", r.Path, ChecksumsFile, parsed[FileName(r.Arch)], r.SHA256)
		}
		if st, _ := os.Stat(r.Path); !st.ModTime().Equal(old) {
			t.Errorf("%s: modification time changed", r.Path)
		}
	}
	if st, _ := os.Stat(sumsPath); !st.ModTime().Equal(old) {
		t.Errorf("%s rewritten", ChecksumsFile)
	}

	// A different version is a different binary, and it is written.
	third, err := BuildAll(context.Background(), Options{Source: opts.Source, Version: "1.2.4"}, []string{"amd64"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !third[0].Written || third[0].SHA256 == first[0].SHA256 {
		t.Errorf("version change: written %v, sha256 %s (was %s)", third[0].Written, third[0].SHA256, first[0].SHA256)
	}

	// The checks look at the bytes: an ARMv7 build is not an armhf (ARMv6) one, nor the reverse.
	armhf, _ := Lookup("armhf")
	armv7, _ := Lookup("armv7")
	if err := Check(filepath.Join(dir, FileName("armhf")), armv7); err == nil || !strings.Contains(err.Error(), "GOARM=6") {
		t.Errorf("armhf binary checked as armv7: %v", err)
	}
	if err := Check(filepath.Join(dir, FileName("armv7")), armhf); err == nil || !strings.Contains(err.Error(), "GOARM=7") {
		t.Errorf("armv7 binary checked as armhf: %v", err)
	}
	arm64, _ := Lookup("arm64")
	if err := Check(filepath.Join(dir, FileName("amd64")), arm64); err == nil || !strings.Contains(err.Error(), "EM_X86_64") {
		t.Errorf("amd64 binary checked as arm64: %v", err)
	}
}

// TestCheckRefusesPIE builds what go.bbclass asks for by default (-buildmode=pie) and shows
// that Check tells it from the static executable the layer promises.
func TestCheckRefusesPIE(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles otabake-agent")
	}
	out := filepath.Join(t.TempDir(), "agent-pie")
	a, _ := Lookup("amd64")
	cmd := exec.Command("go", "build", "-modfile="+ModFile, "-buildmode=pie", "-o", out, Package)
	cmd.Dir = sourceDir(t)
	cmd.Env = append(os.Environ(), BuildEnv(a)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildmode=pie: %v\n%s", err, b)
	}
	if err := Check(out, a); err == nil || !strings.Contains(err.Error(), "ET_EXEC") {
		t.Errorf("Check(PIE) = %v, want an ET_EXEC error", err)
	}
}

func TestParseChecksums(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in, err string
		n       int
	}{
		{in: sum + "  otabake-agent-amd64\n" + strings.ToUpper(sum) + " *otabake-agent-arm64\n\n", n: 2},
		{in: "", n: 0},
		{in: sum + " otabake-agent-amd64\n", err: "line 1"},
		{in: strings.Repeat("zz", 32) + "  x\n", err: "not a hex"},
		{in: sum + "  x\n" + sum + "  x\n", err: "listed twice"},
	} {
		got, err := ParseChecksums([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseChecksums(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != tc.n {
			t.Errorf("ParseChecksums(%q) = %v, %v", tc.in, got, err)
		}
		for _, v := range got {
			if v != sum {
				t.Errorf("digest %s not lower-cased", v)
			}
		}
	}
}
