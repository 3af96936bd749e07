package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/project"
)

// copyTree copies the quickstart example (regular files, directories and symlinks).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "build" || rel == ".otabake" || strings.HasPrefix(rel, "build/") || strings.HasPrefix(rel, ".otabake/") {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(target, 0o755)
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, fi.Mode().Perm())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sha(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				t.Skipf("SKIPPING: %s not installed (see .ci/run for the Debian packages)", tool)
			}
		}
	}
}

// TestNativeQuickstartReproducible builds the quickstart example twice, in different
// directories at different times, and checks that every artifact is byte-identical, that the
// bundle's payloads are exactly the image's boot and system partitions, and that the hash file,
// the verifier and e2fsck agree.
func TestNativeQuickstartReproducible(t *testing.T) {
	needTools(t, "mkfs.ext4", "debugfs", "sfdisk", "e2fsck")
	env := []string{"BUILD_TAG=build-20260101000000-abc1234", "FLOATING_TAG=latest-build-main", "SOURCE_DATE_EPOCH=1767225600"}
	id := &Identity{Version: "build-20260101000000-abc1234", BuildTag: "build-20260101000000-abc1234"}
	systems := []string{"quickstart-efi-amd64", "quickstart-pi5"}
	var dirs []string
	for i := range 2 {
		dir := filepath.Join(t.TempDir(), "project")
		copyTree(t, "../../examples/quickstart", dir)
		cfg, err := project.Load(dir, project.LoadOptions{Env: env})
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			time.Sleep(1100 * time.Millisecond) // a different wall clock second
			// Touch the source tree: mtimes after SOURCE_DATE_EPOCH must not matter.
			now := time.Now()
			os.Chtimes(filepath.Join(dir, "rootfs/usr/bin/hello"), now, now)
		}
		res, err := Build(context.Background(), cfg, id, systems, BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("build %d: %s stages %v", i, res[0].System, res[0].Stages)
		dirs = append(dirs, dir)
	}
	for _, sys := range systems {
		for _, f := range []string{"system.img", "system.img.xz", "system.img.bmap", "system.rugixb", "system.rugixb-hash", "sbom.spdx.json", "system-build-info.json"} {
			a := sha(t, filepath.Join(BuildDir(dirs[0], sys), f))
			b := sha(t, filepath.Join(BuildDir(dirs[1], sys), f))
			if a != b {
				t.Errorf("%s/%s differs between builds: %s vs %s", sys, f, a, b)
			}
		}
		checkBundleMatchesImage(t, BuildDir(dirs[0], sys))
	}
	// The source tree is untouched by the build: no baked files appear in it.
	if _, err := os.Stat(filepath.Join(dirs[0], "rootfs/etc/rugix/system-build-info.json")); err == nil {
		t.Error("the build baked into the source rootfs")
	}
	info, _ := os.ReadFile(filepath.Join(BuildDir(dirs[0], systems[0]), "system-build-info.json"))
	want := "{\n  \"name\": \"quickstart-efi-amd64\",\n  \"release\": {\n    \"id\": \"quickstart-efi-amd64@build-20260101000000-abc1234\",\n    \"version\": \"build-20260101000000-abc1234\"\n  }\n}"
	if string(info) != want {
		t.Errorf("system-build-info.json = %q", info)
	}
}

// checkBundleMatchesImage extracts the bundle's payloads and compares them with the boot-a and
// system-a partitions of system.img as sfdisk reports them.
func checkBundleMatchesImage(t *testing.T, dir string) {
	t.Helper()
	img := filepath.Join(dir, "system.img")
	out, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json %s: %v", img, err)
	}
	var table struct {
		PartitionTable struct {
			Label      string `json:"label"`
			Partitions []struct {
				Node  string `json:"node"`
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &table); err != nil {
		t.Fatal(err)
	}
	part := func(n string) (int64, int64) {
		for _, p := range table.PartitionTable.Partitions {
			if strings.HasSuffix(p.Node, "img"+n) {
				return p.Start * 512, p.Size * 512
			}
		}
		t.Fatalf("%s has no partition %s", img, n)
		return 0, 0
	}
	systemPart := "4"
	if table.PartitionTable.Label == "dos" {
		systemPart = "5"
	}
	b, err := bundle.Open(filepath.Join(dir, "system.rugixb"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Verify(context.Background(), bundle.VerifyOptions{}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	hash, _ := os.ReadFile(filepath.Join(dir, "system.rugixb-hash"))
	if string(hash) != b.Hash() {
		t.Errorf("system.rugixb-hash %q != bundle hash %q", hash, b.Hash())
	}
	imgFile, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer imgFile.Close()
	for i, n := range []string{"2", systemPart} {
		var buf bytes.Buffer
		if _, err := b.ExtractPayload(context.Background(), i, &buf); err != nil {
			t.Fatalf("extract payload %d: %v", i, err)
		}
		off, size := part(n)
		if int64(buf.Len()) != size {
			t.Errorf("payload %d is %d bytes, partition %s is %d", i, buf.Len(), n, size)
			continue
		}
		want := make([]byte, size)
		if _, err := imgFile.ReadAt(want, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("payload %d differs from partition %s", i, n)
		}
		if n == systemPart {
			p := filepath.Join(t.TempDir(), "system.ext4")
			os.WriteFile(p, buf.Bytes(), 0o644)
			if out, err := exec.Command("e2fsck", "-fn", p).CombinedOutput(); err != nil {
				t.Errorf("e2fsck -fn on the system payload: %v\n%s", err, out)
			}
		}
	}
}
