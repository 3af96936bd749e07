package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDropInScripts runs scripts/*.sh with OTABAKE pointing at a stub that records its
// arguments: each drop-in takes the template script's arguments and environment and calls the
// otabake command with the same semantics (nexigon/nexigon-rugix-template scripts/).
func TestDropInScripts(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("SKIPPING: bash not installed")
	}
	scripts, err := filepath.Abs(filepath.Join("..", "..", "scripts"))
	if err != nil {
		t.Fatal(err)
	}
	release := "BUILD_TAG=build-1\nFLOATING_TAG=latest-build-main\nVERSION=build-1\nVERSION_ID=pkg_v_1\n"
	tests := []struct {
		script  string
		args    []string
		env     []string
		files   map[string]string // project files; "+x" suffix on the name makes it executable
		want    string            // the recorded command line
		wantErr string
	}{
		{script: "prepare-release.sh", want: "otabake prepare-release"},
		{script: "build-vars.sh", want: "otabake prepare-release --print-vars"},
		{script: "build-release.sh", args: []string{"a", "b"}, want: "otabake build-release a b"},
		{script: "build-release.sh", wantErr: "usage:"},
		{script: "upload-release.sh", want: "otabake upload-release"}, // no systems: bash 3.2 empty array
		{script: "upload-release.sh", args: []string{"a", "b"}, want: "otabake upload-release --system a --system b"},
		{script: "stabilize-release.sh", want: "otabake promote-release --from-floating --tag stable"},
		{script: "stabilize-release.sh", env: []string{"STABLE_TAG=beta"}, want: "otabake promote-release --from-floating --tag beta"},
		{script: "promote-release.sh", want: "otabake promote-release --tag stable"},
		{script: "run-release.sh", args: []string{"efi"}, wantErr: ".release-env not found"},
		{script: "run-release.sh", files: map[string]string{".release-env": release}, wantErr: "expected exactly one system"},
		{script: "run-release.sh", args: []string{"efi"}, files: map[string]string{".release-env": release, "build/efi/system.img": "img"},
			want: "otabake run efi"},
		{script: "run-release.sh", args: []string{"efi"}, files: map[string]string{".release-env": release, "run-bakery+x": "#!/bin/sh\necho \"run-bakery $*\" >>\"$RECORD\"\n"},
			want: "run-bakery run efi --release-version build-1"},
		{script: "run-release.sh", args: []string{"efi"}, files: map[string]string{".release-env": release}, wantErr: "build/efi/system.img not found"},
	}
	for _, tt := range tests {
		t.Run(tt.script+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			record := filepath.Join(t.TempDir(), "record")
			stub := filepath.Join(t.TempDir(), "otabake")
			if err := os.WriteFile(stub, []byte("#!/bin/sh\necho \"otabake $*\" >>\"$RECORD\"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			for name, content := range tt.files {
				mode := os.FileMode(0o644)
				if n, ok := strings.CutSuffix(name, "+x"); ok {
					name, mode = n, 0o755
				}
				write(t, filepath.Join(dir, name), content)
				if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(bash, append([]string{filepath.Join(scripts, tt.script)}, tt.args...)...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), append([]string{"OTABAKE=" + stub, "RECORD=" + record, "STABLE_TAG="}, tt.env...)...)
			out, err := cmd.CombinedOutput()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(string(out), tt.wantErr) {
					t.Fatalf("err %v, output %q, want %q", err, out, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			got, err := os.ReadFile(record)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(got)) != tt.want {
				t.Errorf("ran %q, want %q", strings.TrimSpace(string(got)), tt.want)
			}
		})
	}
}

// TestDropInScriptsPortable: the scripts must pass shellcheck and avoid what bash 3.2 (macOS)
// lacks or gets wrong.
func TestDropInScriptsPortable(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "..", "scripts", "*.sh"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	// "${arr[@]}" of an empty array is an unbound variable on bash 3.2 under set -u.
	unguarded := regexp.MustCompile(`(^|[^+])"\$\{[A-Za-z_]+\[@\]\}"`)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"declare -A", "mapfile", "readarray", "${var,,}", "${var^^}"} {
			if strings.Contains(string(data), bad) {
				t.Errorf("%s uses %s (not in bash 3.2)", p, bad)
			}
		}
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "#") && unguarded.MatchString(line) {
				t.Errorf("%s: unguarded array expansion: %s", p, line)
			}
		}
	}
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("SKIPPED: shellcheck is not installed (Debian package shellcheck); scripts were NOT linted")
	}
	if out, err := exec.Command(sc, append([]string{"-s", "bash"}, paths...)...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
