package release

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// TestDirtyTree: dirty means changes to tracked files, staged or not, as for
// `git describe --dirty`; untracked files (the nexigon-cli binary the templates' CI downloads
// into the checkout) are listed for a warning and never refuse the release.
func TestDirtyTree(t *testing.T) {
	tests := []struct {
		name          string
		setup         func(t *testing.T, dir string)
		wantDirty     string // substring of the refusal; "" = accepted
		wantUntracked []string
	}{
		{name: "clean", setup: func(*testing.T, string) {}},
		{name: "untracked nexigon-cli binary", setup: func(t *testing.T, dir string) {
			testkit.WriteFile(t, filepath.Join(dir, "nexigon-cli"), "\x7fELF")
		}, wantUntracked: []string{"nexigon-cli"}},
		{name: "untracked directory and file", setup: func(t *testing.T, dir string) {
			testkit.WriteFile(t, filepath.Join(dir, "tools", "a"), "x")
			testkit.WriteFile(t, filepath.Join(dir, "notes.txt"), "x")
		}, wantUntracked: []string{"notes.txt", "tools/"}},
		{name: "ignored file", setup: func(t *testing.T, dir string) {
			testkit.WriteFile(t, filepath.Join(dir, ".gitignore"), "*.log\n")
			runTestGit(t, dir, "add", ".gitignore")
			runTestGit(t, dir, "commit", "-q", "-m", "ignore")
			testkit.WriteFile(t, filepath.Join(dir, "x.log"), "x")
		}},
		{name: "otabake outputs", setup: func(t *testing.T, dir string) {
			for _, p := range []string{EnvFileName, LegacyEnvFileName, ".env", "build/x/system.img", ".otabake/hub/meta.db"} {
				testkit.WriteFile(t, filepath.Join(dir, p), "X=1\n")
			}
		}},
		{name: "modified tracked file", setup: func(t *testing.T, dir string) {
			testkit.WriteFile(t, filepath.Join(dir, "README"), "changed\n")
		}, wantDirty: "M README"},
		{name: "staged change", setup: func(t *testing.T, dir string) {
			testkit.WriteFile(t, filepath.Join(dir, "README"), "changed\n")
			runTestGit(t, dir, "add", "README")
		}, wantDirty: "M README"},
		{name: "staged new file", setup: func(t *testing.T, dir string) {
			testkit.WriteFile(t, filepath.Join(dir, "new.go"), "package x\n")
			runTestGit(t, dir, "add", "new.go")
		}, wantDirty: "A new.go"},
		{name: "deleted tracked file", setup: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "README")); err != nil {
				t.Fatal(err)
			}
		}, wantDirty: "D README"},
		{name: "modified and untracked", setup: func(t *testing.T, dir string) {
			testkit.WriteFile(t, filepath.Join(dir, "README"), "changed\n")
			testkit.WriteFile(t, filepath.Join(dir, "nexigon-cli"), "\x7fELF")
		}, wantDirty: "M README", wantUntracked: []string{"nexigon-cli"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := identityRepo(t)
			tt.setup(t, dir)
			ctx := context.Background()
			cfg := identityConfig(t, dir)
			_, err := NewIdentity(ctx, dir, cfg, IdentityOptions{})
			switch {
			case tt.wantDirty == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantDirty != "" && (err == nil || !strings.Contains(err.Error(), tt.wantDirty) || !strings.Contains(err.Error(), "--allow-dirty")):
				t.Fatalf("err = %v, want a refusal naming %q and --allow-dirty", err, tt.wantDirty)
			}
			if err != nil && strings.Contains(err.Error(), "nexigon-cli") {
				t.Errorf("refusal names an untracked file: %v", err)
			}
			if tt.wantDirty != "" {
				id, err := NewIdentity(ctx, dir, cfg, IdentityOptions{AllowDirty: true})
				if err != nil || !id.Dirty {
					t.Fatalf("--allow-dirty: %+v %v", id, err)
				}
			}
			got := UntrackedFiles(ctx, dir)
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tt.wantUntracked) {
				t.Errorf("untracked = %q, want %q", got, tt.wantUntracked)
			}
			w := UntrackedWarning(got)
			for _, p := range tt.wantUntracked {
				if !strings.Contains(w, p) {
					t.Errorf("warning %q does not list %s", w, p)
				}
			}
		})
	}
}

func TestUntrackedWarningBounded(t *testing.T) {
	if w := UntrackedWarning(nil); w != "" {
		t.Errorf("no files: %q", w)
	}
	var paths []string
	for i := 0; i < maxUntrackedListed+3; i++ {
		paths = append(paths, "f"+string(rune('a'+i)))
	}
	w := UntrackedWarning(paths)
	if !strings.Contains(w, "and 3 more") || strings.Contains(w, paths[maxUntrackedListed]) {
		t.Errorf("warning = %q", w)
	}
}

// TestWriteEnvFilesBoth: prepare-release writes the identity to .release-env (the Rugix
// template's name) and .release.env (meta-nexigon's) with the same content.
func TestWriteEnvFilesBoth(t *testing.T) {
	dir := t.TempDir()
	id := &Identity{BuildTag: "build-1", FloatingTag: "latest-build-main", Version: "build-1", VersionID: "pkg_v_1"}
	paths, err := WriteEnvFiles(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 || filepath.Base(paths[0]) != EnvFileName || filepath.Base(paths[1]) != LegacyEnvFileName {
		t.Fatalf("paths = %v", paths)
	}
	a, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(paths[1])
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) || !strings.Contains(string(a), "VERSION_ID=pkg_v_1\n") {
		t.Errorf(".release-env %q, .release.env %q", a, b)
	}
	got, _, err := ReadEnvFile(dir)
	if err != nil || *got != *id {
		t.Errorf("read back %+v, %v", got, err)
	}
}
