//go:build linux

package vmkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/otabake/otabake/internal/atomicfile"
)

// Kernel is an extracted Debian kernel: the image the boot partition gets and the module tree
// the initramfs is assembled from.
type Kernel struct {
	// Version is the kernel release (uname -r), e.g. "6.1.0-56-amd64".
	Version string
	// Vmlinuz is the path of the bootable kernel image.
	Vmlinuz string
	// ModulesDir is …/lib/modules/<Version>; it holds modules.dep and modules.builtin.
	ModulesDir string
}

// metaPackage is Debian's "latest kernel for amd64" package; it only depends on the real one.
const metaPackage = "linux-image-amd64"

// cacheIndex is the file in the cache directory that says which extracted kernel to use. It is
// written last, so its presence means the extracted tree is complete.
const cacheIndex = "kernel.json"

type cacheEntry struct {
	Package string `json:"package"` // e.g. linux-image-6.1.0-56-amd64
	Version string `json:"version"` // kernel release
	Dir     string `json:"dir"`     // extracted package root, relative to the cache directory
}

// FetchKernel returns Debian's current amd64 kernel, extracted under cacheDir.
//
// The first call resolves the package linux-image-amd64 depends on (apt-cache depends), fetches
// it with apt-get download inside cacheDir, extracts it with dpkg-deb -x, and generates
// modules.dep, which the package leaves to depmod in its postinst. Only the real image package
// is downloaded: the linux-image-amd64 meta package holds nothing but documentation.
//
// Later calls use the cache without running apt at all, so a test run is offline and pinned to
// the kernel first fetched; delete cacheDir to move to a newer kernel.
func FetchKernel(ctx context.Context, cacheDir string) (*Kernel, error) {
	cacheDir, err := filepath.Abs(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("kernel cache %s: %w", cacheDir, err)
	}
	if k, err := cachedKernel(cacheDir); err == nil {
		return k, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, tool := range []struct{ name, pkg string }{{"apt-cache", "apt"}, {"apt-get", "apt"}, {"dpkg-deb", "dpkg"}} {
		if _, err := exec.LookPath(tool.name); err != nil {
			return nil, fmt.Errorf("fetch kernel: %s not found in PATH; this needs a Debian-like host (apt-get install %s)", tool.name, tool.pkg)
		}
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("create kernel cache: %w", err)
	}
	// Test binaries of several packages may fetch at once; one downloads, the others then hit
	// the cache.
	unlock, err := lockDir(cacheDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if k, err := cachedKernel(cacheDir); err == nil {
		return k, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	pkg, err := kernelPackage(ctx)
	if err != nil {
		return nil, err
	}
	deb, cleanup, err := downloadPackage(ctx, cacheDir, pkg)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	tmp, err := os.MkdirTemp(cacheDir, ".extract-")
	if err != nil {
		return nil, fmt.Errorf("fetch kernel: %w", err)
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("extract %s with dpkg-deb: %w: %s", filepath.Base(deb), err, tail(out))
	}
	version, err := onlyModuleTree(tmp)
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", pkg, err)
	}
	modulesDir := filepath.Join(tmp, "lib", "modules", version)
	if _, err := os.Stat(filepath.Join(modulesDir, "modules.dep")); errors.Is(err, fs.ErrNotExist) {
		if err := GenerateModulesDep(modulesDir); err != nil {
			return nil, fmt.Errorf("package %s: %w", pkg, err)
		}
	}

	// Publish: rename the finished tree into place, then write the index that points at it.
	dir := pkg
	final := filepath.Join(cacheDir, dir)
	if err := os.RemoveAll(final); err != nil {
		return nil, fmt.Errorf("replace stale %s: %w", final, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("publish extracted kernel: %w", err)
	}
	idx, err := json.MarshalIndent(cacheEntry{Package: pkg, Version: version, Dir: dir}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", cacheIndex, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(cacheDir, cacheIndex), append(idx, '\n'), 0o644); err != nil {
		return nil, err
	}
	return cachedKernel(cacheDir)
}

// cachedKernel loads the kernel the cache index points at; fs.ErrNotExist means "not cached".
func cachedKernel(cacheDir string) (*Kernel, error) {
	data, err := os.ReadFile(filepath.Join(cacheDir, cacheIndex))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read kernel cache index: %w", err)
	}
	var e cacheEntry
	if err := json.Unmarshal(data, &e); err != nil || e.Dir == "" || e.Version == "" || strings.Contains(e.Dir, "..") {
		return nil, fmt.Errorf("kernel cache index %s is damaged (delete %s to refetch)", filepath.Join(cacheDir, cacheIndex), cacheDir)
	}
	root := filepath.Join(cacheDir, e.Dir)
	k := &Kernel{
		Version:    e.Version,
		Vmlinuz:    filepath.Join(root, "boot", "vmlinuz-"+e.Version),
		ModulesDir: filepath.Join(root, "lib", "modules", e.Version),
	}
	for _, p := range []string{k.Vmlinuz, filepath.Join(k.ModulesDir, "modules.dep")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("kernel cache %s is incomplete (delete it to refetch): %w", cacheDir, err)
		}
	}
	return k, nil
}

// kernelPackage asks apt which versioned image package linux-image-amd64 currently depends on.
func kernelPackage(ctx context.Context) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "apt-cache", "depends", metaPackage)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %w: %s (run apt-get update; the package is in Debian main)", metaPackage, err, tail(stderr.Bytes()))
	}
	pkg, err := parseDepends(out)
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %w", metaPackage, err)
	}
	return pkg, nil
}

// parseDepends picks the first linux-image-* dependency from apt-cache depends output.
func parseDepends(out []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		line = strings.TrimPrefix(line, "|")
		dep, ok := strings.CutPrefix(line, "Depends: ")
		if !ok {
			continue
		}
		dep = strings.TrimSpace(dep)
		if strings.HasPrefix(dep, "linux-image-") && !strings.ContainsAny(dep, "<> ") {
			return dep, nil
		}
	}
	return "", errors.New("no linux-image-* dependency listed (run apt-get update)")
}

// downloadPackage runs apt-get download in a fresh directory under cacheDir and returns the .deb.
func downloadPackage(ctx context.Context, cacheDir, pkg string) (deb string, cleanup func(), err error) {
	dl, err := os.MkdirTemp(cacheDir, ".download-")
	if err != nil {
		return "", nil, fmt.Errorf("download %s: %w", pkg, err)
	}
	cleanup = func() { os.RemoveAll(dl) }
	// apt drops privileges to _apt for downloads when it can; let it write here.
	_ = os.Chmod(dl, 0o777)
	cmd := exec.CommandContext(ctx, "apt-get", "download", pkg)
	cmd.Dir = dl
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("apt-get download %s: %w: %s", pkg, err, tail(out))
	}
	debs, _ := filepath.Glob(filepath.Join(dl, "*.deb"))
	if len(debs) != 1 {
		cleanup()
		return "", nil, fmt.Errorf("apt-get download %s: want one .deb in %s, found %d", pkg, dl, len(debs))
	}
	return debs[0], cleanup, nil
}

// onlyModuleTree returns the single kernel release under root/lib/modules.
func onlyModuleTree(root string) (string, error) {
	ents, err := os.ReadDir(filepath.Join(root, "lib", "modules"))
	if err != nil {
		return "", fmt.Errorf("no module tree: %w", err)
	}
	var versions []string
	for _, e := range ents {
		if e.IsDir() {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) != 1 {
		return "", fmt.Errorf("want one kernel under lib/modules, found %q", versions)
	}
	v := versions[0]
	if _, err := os.Stat(filepath.Join(root, "boot", "vmlinuz-"+v)); err != nil {
		return "", fmt.Errorf("no kernel image for %s: %w", v, err)
	}
	return v, nil
}

// lockDir takes an exclusive flock on dir/.lock, waiting for another holder to finish.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock kernel cache: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock kernel cache %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// tail keeps the end of a tool's output for an error message.
func tail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}
