package release

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/project"
	"github.com/otabake/otabake/internal/sign"
	"github.com/otabake/otabake/internal/testkit"
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

// TestNativeQuickstartReproducible builds the quickstart example twice, in different
// directories at different times, and checks that every artifact is byte-identical, that the
// bundle's payloads are exactly the image's boot and system partitions, and that the hash file,
// the verifier and e2fsck agree.
func TestNativeQuickstartReproducible(t *testing.T) {
	testkit.NeedTools(t, "the reproducible native quickstart build did not run",
		testkit.Tool{Name: "mkfs.ext4", Package: "e2fsprogs"}, testkit.Tool{Name: "debugfs", Package: "e2fsprogs"},
		testkit.Tool{Name: "sfdisk", Package: "fdisk"}, testkit.Tool{Name: "e2fsck", Package: "e2fsprogs"})
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
		// system.rugixb is signed too: its CMS signingTime is the release's time and the
		// ECDSA nonce is RFC 6979's, so the signature is as reproducible as the rest.
		for _, f := range []string{"system.img", "system.img.xz", "system.img.bmap", "system.rugixb", "system.rugixb-hash", "sbom.spdx.json", "system-build-info.json"} {
			a := testkit.SHA256File(t, filepath.Join(BuildDir(dirs[0], sys), f))
			b := testkit.SHA256File(t, filepath.Join(BuildDir(dirs[1], sys), f))
			if a != b {
				t.Errorf("%s/%s differs between builds: %s vs %s", sys, f, a, b)
			}
		}
		checkBundleMatchesImage(t, BuildDir(dirs[0], sys))
		checkTrust(t, filepath.Join(dirs[0], "keys/dev-ca.crt"), BuildDir(dirs[0], sys))
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
	disk := readDiskTable(t, img)
	systemPart := "4"
	if disk.Label == "dos" {
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
	for i, n := range []string{"2", systemPart} {
		var buf bytes.Buffer
		if _, err := b.ExtractPayload(context.Background(), i, &buf); err != nil {
			t.Fatalf("extract payload %d: %v", i, err)
		}
		want := disk.bytes(t, n)
		if buf.Len() != len(want) {
			t.Errorf("payload %d is %d bytes, partition %s is %d", i, buf.Len(), n, len(want))
			continue
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

// TestNativeBadInput checks that each broken input fails with an error naming the problem and
// leaves no build/<system>/ (and no work directory) behind.
func TestNativeBadInput(t *testing.T) {
	testkit.NeedTools(t, "the native build's bad-input checks did not run",
		testkit.Tool{Name: "mkfs.ext4", Package: "e2fsprogs"}, testkit.Tool{Name: "debugfs", Package: "e2fsprogs"})
	const sys = "quickstart-efi-amd64"
	tests := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   string
	}{
		{"missing kernel", func(t *testing.T, dir string) {
			matches, _ := filepath.Glob(filepath.Join(dir, "rootfs/boot/vmlinuz-*"))
			for _, m := range matches {
				os.Remove(m)
			}
		}, "vmlinuz"},
		{"rootfs larger than the system partition", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "rootfs/usr/lib/big"), bytes.Repeat([]byte("x"), 3<<20), 0o644)
			appendTOML(t, dir, "[systems.quickstart-efi-amd64.sizes]\nboot = \"32M\"\nsystem = \"2M\"\n", true)
		}, "does not fit"},
		{"unknown target", func(t *testing.T, dir string) {
			replaceInFile(t, filepath.Join(dir, "otabake.toml"), `target = "efi-grub"`, `target = "efi-lilo"`)
		}, "efi-lilo"},
		{"unwritable output directory", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "build"), []byte("a file where build/ should be"), 0o644)
		}, "build"},
		{"roots that did not issue the signer", func(t *testing.T, dir string) {
			k, err := sign.NewDevKeys(sign.DevKeyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "keys/other-ca.crt"), k.CACert, 0o644)
			replaceInFile(t, filepath.Join(dir, "otabake.toml"), `roots = ["keys/dev-ca.crt"]`, `roots = ["keys/other-ca.crt"]`)
		}, "does not chain to the trust roots baked into the image"},
		{"corrupt tarball", func(t *testing.T, dir string) {
			gz := append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, bytes.Repeat([]byte{0xde, 0xad}, 500)...)
			os.WriteFile(filepath.Join(dir, "rootfs.tar.gz"), gz, 0o644)
			replaceInFile(t, filepath.Join(dir, "otabake.toml"), `rootfs = "rootfs"`, `rootfs = "rootfs.tar.gz"`)
		}, "rootfs.tar.gz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "project")
			copyTree(t, "../../examples/quickstart", dir)
			tt.break_(t, dir)
			cfg, err := project.Load(dir, project.LoadOptions{Env: []string{"SOURCE_DATE_EPOCH=1767225600"}})
			if err == nil {
				_, err = Build(context.Background(), cfg, &Identity{Version: "v1", BuildTag: "v1"}, []string{sys}, BuildOptions{})
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			t.Logf("%s: %v", tt.name, err)
			if st, err := os.Stat(BuildDir(dir, sys)); err == nil && st.IsDir() {
				t.Errorf("build/%s exists after a failed build", sys)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "build", ".*")); len(left) > 0 {
				t.Errorf("work directories left behind: %v", left)
			}
		})
	}
}

func replaceInFile(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	os.WriteFile(path, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644)
}

// appendTOML replaces the efi system's sizes table (dropExisting) and appends text.
func appendTOML(t *testing.T, dir, text string, dropExisting bool) {
	t.Helper()
	p := filepath.Join(dir, "otabake.toml")
	data, _ := os.ReadFile(p)
	s := string(data)
	if dropExisting {
		s = strings.Replace(s, "[systems.quickstart-efi-amd64.sizes]\nboot = \"32M\"\n", "", 1)
	}
	os.WriteFile(p, []byte(s+"\n"+text), 0o644)
}

// checkTrust checks what a device needs to verify its next update: the bundle's signature
// verifies against the project's CA, and the system partition holds that CA as
// /etc/rugix/root.crt (and in roots.pem) and the Rugix Ctrl configuration listing it.
func checkTrust(t *testing.T, caPath, dir string) {
	t.Helper()
	roots, err := sign.LoadCertPool(caPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Open(filepath.Join(dir, "system.rugixb"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rep, err := b.Verify(context.Background(), bundle.VerifyOptions{Roots: roots})
	if err != nil {
		t.Fatalf("verify with %s: %v", caPath, err)
	}
	if len(rep.Signatures) != 1 || !rep.Signatures[0].Verified {
		t.Errorf("signatures %+v, want one verified", rep.Signatures)
	}
	img := filepath.Join(t.TempDir(), "system.ext4")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ExtractPayload(context.Background(), len(b.Payloads())-1, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cat := func(p string) []byte {
		out := debugfsCat(t, img, p)
		if out == "" {
			t.Fatalf("debugfs cat %s: empty", p)
		}
		return []byte(out)
	}
	ctrl := string(cat("/etc/rugix/ctrl.toml"))
	if !strings.Contains(ctrl, "[signatures]\nroots = [\"/etc/rugix/root.crt\"]\n") {
		t.Errorf("/etc/rugix/ctrl.toml = %q, want [signatures] roots = [\"/etc/rugix/root.crt\"]", ctrl)
	}
	ca, err := sign.LoadCertificates(caPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/rugix/root.crt", "/etc/rugix/roots.pem"} {
		got, err := sign.ParseCertificates(cat(p))
		if err != nil || len(got) != 1 || !got[0].Equal(ca[0]) {
			t.Errorf("%s holds %d certificates (%v), want exactly the CA %s", p, len(got), err, caPath)
		}
	}
}
