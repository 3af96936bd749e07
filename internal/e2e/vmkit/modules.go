//go:build linux

package vmkit

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/otabake/otabake/internal/atomicfile"
)

// GuestModules are the drivers (for ModuleClosure) the e2e guest needs under QEMU q35: virtio disk and network,
// ext4 root and data, and the vfat boot partition with its code pages.
var GuestModules = []string{"virtio_pci", "virtio_blk", "virtio_net", "ext4", "crc32c_generic", "vfat",
	"nls_cp437", "nls_ascii", "nls_iso8859-1"}

// moduleSuffixes are the file name endings of kernel modules, longest first.
var moduleSuffixes = []string{".ko.zst", ".ko.xz", ".ko"}

// moduleName turns a module path such as kernel/fs/nls/nls_iso8859-1.ko.xz into the name the
// kernel uses, nls_iso8859_1; ok is false for a file that is not a module.
func moduleName(p string) (name string, ok bool) {
	base := path.Base(p)
	for _, suf := range moduleSuffixes {
		if s, found := strings.CutSuffix(base, suf); found {
			return normName(s), true
		}
	}
	return "", false
}

// normName makes - and _ equivalent, as modprobe does.
func normName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// uncompressedPath is the module path without a compression suffix: what the initramfs holds.
func uncompressedPath(p string) string {
	for _, suf := range []string{".zst", ".xz"} {
		if s, ok := strings.CutSuffix(p, suf); ok && strings.HasSuffix(s, ".ko") {
			return s
		}
	}
	return p
}

// openModule opens a module file and decompresses it when it is .ko.xz or .ko.zst.
func openModule(p string) (io.ReadCloser, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open module: %w", err)
	}
	switch {
	case strings.HasSuffix(p, ".ko.xz"):
		r, err := xz.NewReader(bufio.NewReader(f))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("module %s: xz: %w", p, err)
		}
		return readCloser{r, f}, nil
	case strings.HasSuffix(p, ".ko.zst"):
		d, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("module %s: zstd: %w", p, err)
		}
		return readCloser{d, closers{d.Close, func() { f.Close() }}}, nil
	}
	return f, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

type closers []func()

func (c closers) Close() error {
	for _, f := range c {
		f()
	}
	return nil
}

// ModuleClosure resolves module names through modules.dep and returns every module needed to
// load them, dependencies before dependents, as paths relative to ModulesDir. Names are matched
// with - and _ equivalent. A name listed in modules.builtin is compiled into the kernel and
// skipped; a name in neither file is an error, so a typo cannot silently drop a driver.
func (k *Kernel) ModuleClosure(names ...string) ([]string, error) {
	deps, byName, err := readModulesDep(filepath.Join(k.ModulesDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	builtin, err := readModulesBuiltin(filepath.Join(k.ModulesDir, "modules.builtin"))
	if err != nil {
		return nil, err
	}

	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var order []string
	var visit func(p string, chain []string) error
	visit = func(p string, chain []string) error {
		switch state[p] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("modules.dep: dependency cycle %s", strings.Join(append(chain, p), " → "))
		}
		state[p] = visiting
		chain = append(slices.Clip(chain), p)
		// depmod lists dependencies so that they load from the end backwards.
		for _, d := range slices.Backward(deps[p]) {
			if _, ok := deps[d]; !ok {
				return fmt.Errorf("modules.dep: %s depends on %s, which has no entry", p, d)
			}
			if err := visit(d, chain); err != nil {
				return err
			}
		}
		state[p] = done
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		n = normName(n)
		p, ok := byName[n]
		if !ok {
			if builtin[n] {
				continue
			}
			return nil, fmt.Errorf("kernel %s: no module %q (not in modules.dep or modules.builtin)", k.Version, n)
		}
		if err := visit(p, nil); err != nil {
			return nil, fmt.Errorf("kernel %s: %w", k.Version, err)
		}
	}
	return order, nil
}

// readModulesDep parses modules.dep ("path: dep dep …") into path → deps and name → path.
func readModulesDep(file string) (deps map[string][]string, byName map[string]string, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read modules.dep: %w", err)
	}
	defer f.Close()
	deps, byName = map[string][]string{}, map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(text, ":")
		name, isMod := moduleName(mod)
		if !ok || !isMod {
			return nil, nil, fmt.Errorf("%s:%d: want \"module.ko: deps…\", got %q", file, line, text)
		}
		deps[mod] = strings.Fields(rest)
		byName[name] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", file, err)
	}
	return deps, byName, nil
}

// readModulesBuiltin returns the names of the modules compiled into the kernel. A missing file
// means none are known.
func readModulesBuiltin(file string) (map[string]bool, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read modules.builtin: %w", err)
	}
	out := map[string]bool{}
	for l := range strings.Lines(string(data)) {
		if name, ok := moduleName(strings.TrimSpace(l)); ok {
			out[name] = true
		}
	}
	return out, nil
}

// GenerateModulesDep writes modulesDir/modules.dep from the "depends=" entries of each module's
// .modinfo section. Debian's kernel packages leave modules.dep to depmod in their postinst, which
// does not run for an extracted package, and depmod (kmod) is not always on the host. Each line
// lists a module's complete dependency set in depmod's order: the module to load last first.
func GenerateModulesDep(modulesDir string) error {
	var paths []string
	err := filepath.WalkDir(modulesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, ok := moduleName(p); ok && d.Type().IsRegular() {
			rel, err := filepath.Rel(modulesDir, p)
			if err != nil {
				return err
			}
			paths = append(paths, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list modules in %s: %w", modulesDir, err)
	}
	slices.Sort(paths)

	direct := make([][]string, len(paths))
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				direct[i], errs[i] = moduleDepends(filepath.Join(modulesDir, paths[i]))
			}
		})
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("generate modules.dep: %w", err)
	}

	byName := make(map[string]int, len(paths))
	for i, p := range paths {
		name, _ := moduleName(p)
		if j, dup := byName[name]; dup {
			return fmt.Errorf("generate modules.dep: module %s exists twice: %s and %s", name, paths[j], p)
		}
		byName[name] = i
	}
	edges := make([][]int, len(paths))
	for i, names := range direct {
		for _, n := range names {
			j, ok := byName[normName(n)]
			if !ok {
				return fmt.Errorf("generate modules.dep: %s depends on %s, which is not in %s", paths[i], n, modulesDir)
			}
			edges[i] = append(edges[i], j)
		}
	}

	var buf bytes.Buffer
	for i, p := range paths {
		load, err := loadOrder(i, edges, paths)
		if err != nil {
			return fmt.Errorf("generate modules.dep: %w", err)
		}
		buf.WriteString(p)
		buf.WriteByte(':')
		// depmod lists the dependencies so that modprobe loads them from the end backwards.
		for k := len(load) - 2; k >= 0; k-- {
			buf.WriteByte(' ')
			buf.WriteString(paths[load[k]])
		}
		buf.WriteByte('\n')
	}
	return atomicfile.WriteFile(filepath.Join(modulesDir, "modules.dep"), buf.Bytes(), 0o644)
}

// loadOrder returns module i and everything it needs, dependencies first, i last.
func loadOrder(i int, edges [][]int, paths []string) ([]int, error) {
	state := map[int]int{}
	var out []int
	var visit func(n int) error
	visit = func(n int) error {
		switch state[n] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("dependency cycle through %s", paths[n])
		}
		state[n] = 1
		for _, d := range edges[n] {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, n)
		return nil
	}
	return out, visit(i)
}

// moduleDepends reads the depends= entry of a module's .modinfo section.
func moduleDepends(p string) ([]string, error) {
	var ef *elf.File
	if strings.HasSuffix(p, ".ko") {
		f, err := elf.Open(p)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", p, err)
		}
		defer f.Close()
		ef = f
	} else {
		r, err := openModule(p)
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("module %s: decompress: %w", p, err)
		}
		if ef, err = elf.NewFile(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("module %s: %w", p, err)
		}
	}
	sec := ef.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s: no .modinfo section", p)
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s: read .modinfo: %w", p, err)
	}
	for field := range bytes.SplitSeq(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(field, []byte("depends=")); ok {
			var deps []string
			for d := range strings.SplitSeq(string(v), ",") {
				if d != "" {
					deps = append(deps, d)
				}
			}
			return deps, nil
		}
	}
	return nil, nil
}
