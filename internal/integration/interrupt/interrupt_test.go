package interrupt

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/testkit"
)

// exitBound is how soon after SIGTERM otabake must have exited (issue 21: "within a second").
// Commands return through their context in milliseconds; cli.Main ends a command still
// blocked after 700 ms itself.
const exitBound = time.Second

const system = "big-efi"

// The project: one efi-grub system whose rootfs holds 128 MiB of incompressible data and whose
// bundle is stored uncompressed, so that every step takes seconds of real work (hashing,
// copying) without xz dominating the test's run time.
const otabakeTOML = `
[hub]
repository = "interrupt"
package = "system"

[systems.big-efi]
target = "efi-grub"
architecture = "amd64"
rootfs = "rootfs"
boot = "bootfiles-efi"
bundle = { compression = "none" }
# Unsigned: devices verify by the Hub's bundle hash (build-release refuses a system with
# neither signing nor use_bundle_hash); this test is about interruption, not trust.
use_bundle_hash = true

[systems.big-efi.grub]
efi_binary = "rootfs/usr/lib/otabake-demo/BOOTX64.EFI"
`

func TestSIGTERMStopsPromptlyAndLeavesNothingPartial(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 128 MiB release; skipped with -short")
	}
	testkit.NeedTools(t, "the interrupt test did not run; .ci/run installs them",
		testkit.Tool{Name: "git", Package: "git"}, testkit.Tool{Name: "mkfs.ext4", Package: "e2fsprogs"})
	bin := testkit.BuildOtabake(t, t.TempDir())
	proj := newProject(t)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--no-progress", "--project-dir", proj}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("otabake %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("hub", "init", "--repository", "interrupt", "--package", "system")
	run("prepare-release")
	releaseEnv := testkit.ReadFile(t, filepath.Join(proj, ".release-env"))
	out := filepath.Join(proj, "build", system)

	t.Run("build-release", func(t *testing.T) {
		// Interrupted while it encodes the bundle: nothing of the build may remain.
		interrupt(t, bin, proj, untilStderr(": bundle"), "build-release", "--image-compression", "none", system)
		if names := list(t, out); len(names) != 0 {
			t.Errorf("build/%s holds %v after an interrupted build; want nothing", system, names)
		}
		noTempFiles(t, proj)
	})

	run("build-release", "--image-compression", "none", system)
	bundle := filepath.Join(out, "system.rugixb")
	built := list(t, out)

	t.Run("bundle verify", func(t *testing.T) {
		interrupt(t, bin, proj, after(150*time.Millisecond), "bundle", "verify", bundle)
		noTempFiles(t, proj)
	})

	t.Run("bundle extract", func(t *testing.T) {
		dest := t.TempDir()
		interrupt(t, bin, proj, after(150*time.Millisecond), "bundle", "extract", "--payload", "1", "--output", filepath.Join(dest, "system.img"), bundle)
		if names := list(t, dest); len(names) != 0 {
			t.Errorf("extract left %v in the output directory; want nothing", names)
		}
	})

	t.Run("upload-release", func(t *testing.T) {
		interrupt(t, bin, proj, after(200*time.Millisecond), "upload-release")
		noTempFiles(t, proj)
		if got := testkit.ReadFile(t, filepath.Join(proj, ".release-env")); got != releaseEnv {
			t.Errorf(".release-env changed by an interrupted upload:\n%s\nwant\n%s", got, releaseEnv)
		}
		// Blobs that made it are complete (their name is their digest); a re-run finishes the
		// release from there.
		blobsIntact(t, filepath.Join(proj, ".otabake", "hub", "blobs"))
		run("hub", "check")
		run("upload-release")
	})

	t.Run("blocked read", func(t *testing.T) {
		// A bundle path that is a FIFO nobody writes: the open itself blocks, out of reach of
		// any context. cli.Main ends the process after its grace period.
		fifo := filepath.Join(t.TempDir(), "bundle.fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		interrupt(t, bin, proj, after(100*time.Millisecond), "bundle", "verify", fifo)
	})

	if got := list(t, out); strings.Join(got, " ") != strings.Join(built, " ") {
		t.Errorf("build/%s changed: %v, was %v", system, got, built)
	}
}

// A trigger decides when the command is under way; it reads the command's stderr.
type trigger func(stderr io.Reader) error

func after(d time.Duration) trigger {
	return func(stderr io.Reader) error {
		go io.Copy(io.Discard, stderr)
		time.Sleep(d)
		return nil
	}
}

func untilStderr(marker string) trigger {
	return func(stderr io.Reader) error {
		sc := bufio.NewScanner(stderr)
		var seen []string
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.Contains(sc.Text(), marker) {
				go io.Copy(io.Discard, stderr)
				return nil
			}
		}
		return fmt.Errorf("stderr ended before %q:\n%s", marker, strings.Join(seen, "\n"))
	}
}

// interrupt starts otabake with args, waits for when, sends SIGTERM and checks that the process
// exits within exitBound with status 143 (128 + SIGTERM) and says it was interrupted.
func interrupt(t *testing.T, bin, proj string, when trigger, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--no-progress", "--project-dir", proj}, args...)...)
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	cmd.Stderr = io.MultiWriter(pw, &stderr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	if err := when(pr); err != nil {
		t.Fatalf("otabake %s: %v", strings.Join(args, " "), err)
	}
	select {
	case err := <-exited:
		t.Fatalf("otabake %s finished (%v) before it could be interrupted; the test's input is too small\n%s",
			strings.Join(args, " "), err, stderr.String())
	default:
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("otabake %s still running 30 s after SIGTERM", strings.Join(args, " "))
	}
	took := time.Since(sent)
	t.Logf("otabake %s exited %v after SIGTERM", strings.Join(args, " "), took.Round(time.Millisecond))
	if took > exitBound {
		t.Errorf("exited %v after SIGTERM; want within %v", took, exitBound)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Errorf("exit = %v; want status 143\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted by SIGTERM") {
		t.Errorf("stderr does not say it was interrupted:\n%s", stderr.String())
	}
}

// noTempFiles fails if any temporary file or work directory of otabake is left in dir.
func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" {
			return filepath.SkipDir
		}
		n := d.Name()
		if strings.Contains(n, ".tmp") || strings.Contains(n, ".work-") || strings.HasPrefix(n, ".otabake-payload-") || strings.HasPrefix(n, ".debugfs-") {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

// blobsIntact checks that every content-addressed blob holds what its name says.
func blobsIntact(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer f.Close()
		h := sha256.New()
		io.Copy(h, f)
		if got := hex.EncodeToString(h.Sum(nil)); got != d.Name() {
			t.Errorf("blob %s holds content %s: a partial blob", p, got)
		}
		return nil
	})
}

func newProject(t *testing.T) string {
	t.Helper()
	proj := t.TempDir()
	qs := filepath.Join(testkit.RepoRoot(t), "examples", "quickstart")
	if err := os.CopyFS(proj, os.DirFS(qs)); err != nil {
		t.Fatal(err)
	}
	// The example's .env names its own repository; this project's otabake.toml names it here.
	os.Remove(filepath.Join(proj, ".env"))
	if err := os.WriteFile(filepath.Join(proj, "otabake.toml"), []byte(otabakeTOML), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(proj, "rootfs", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{21})
	if _, err := io.CopyN(f, rng, 128<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(proj, ".gitignore"), []byte("build/\n.otabake/\n.release-env\n"), 0o644)
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = proj
		testkit.RunCmd(t, cmd)
	}
	return proj
}

func list(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
