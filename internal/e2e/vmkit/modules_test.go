//go:build linux

package vmkit

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/otabake/otabake/internal/testkit"
)

// fakeModulesDep is depmod-style: complete dependency sets, the module to load first last.
const fakeModulesDep = `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/fs/nls/nls_iso8859-1.ko.xz:
kernel/fs/fat/fat.ko.zst:
kernel/fs/fat/vfat.ko.zst: kernel/fs/fat/fat.ko.zst
kernel/lib/loop_a.ko: kernel/lib/loop_b.ko
kernel/lib/loop_b.ko: kernel/lib/loop_a.ko
kernel/lib/dangling.ko: kernel/lib/missing.ko
`

const fakeModulesBuiltin = `kernel/fs/ext4/ext4.ko
kernel/crypto/crc32c_generic.ko
`

func fakeKernel(t *testing.T, dep, builtin string) *Kernel {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "lib", "modules", "6.1.0-test-amd64")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"modules.dep": dep, "modules.builtin": builtin} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &Kernel{Version: "6.1.0-test-amd64", ModulesDir: dir}
}

func TestModuleClosure(t *testing.T) {
	k := fakeKernel(t, fakeModulesDep, fakeModulesBuiltin)
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr string
	}{
		{
			name: "deps first",
			in:   []string{"virtio_blk"},
			want: []string{"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/block/virtio_blk.ko"},
		},
		{
			name: "shared deps once",
			in:   []string{"virtio_pci", "virtio_blk"},
			want: []string{"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko",
				"kernel/drivers/virtio/virtio_pci_modern_dev.ko", "kernel/drivers/virtio/virtio_pci.ko",
				"kernel/drivers/block/virtio_blk.ko"},
		},
		{
			name: "dash and underscore",
			in:   []string{"nls_iso8859_1", "virtio-ring", "nls-iso8859-1"},
			want: []string{"kernel/fs/nls/nls_iso8859-1.ko.xz", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko"},
		},
		{name: "builtin skipped", in: []string{"ext4", "crc32c-generic"}, want: nil},
		{name: "compressed", in: []string{"vfat"}, want: []string{"kernel/fs/fat/fat.ko.zst", "kernel/fs/fat/vfat.ko.zst"}},
		{name: "unknown", in: []string{"virtio_blk", "virtio_bkl"}, wantErr: `no module "virtio_bkl"`},
		{name: "cycle", in: []string{"loop_a"}, wantErr: "cycle"},
		{name: "dangling", in: []string{"dangling"}, wantErr: "no entry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := k.ModuleClosure(tc.in...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ModuleClosure(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ModuleClosure(%q): %v", tc.in, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ModuleClosure(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestModuleClosureBadModulesDep(t *testing.T) {
	k := fakeKernel(t, "kernel/a.ko: kernel/b.ko\nthis is not a module line\n", "")
	if _, err := k.ModuleClosure("a"); err == nil || !strings.Contains(err.Error(), "modules.dep:2") {
		t.Fatalf("ModuleClosure on a malformed modules.dep: %v; want an error naming line 2", err)
	}
	missing := &Kernel{Version: "x", ModulesDir: t.TempDir()}
	if _, err := missing.ModuleClosure("a"); err == nil {
		t.Fatal("ModuleClosure without modules.dep succeeded")
	}
}

// elfModule returns a minimal relocatable x86-64 ELF file whose .modinfo section holds the given
// NUL-separated fields, as the kernel build writes them.
func elfModule(t *testing.T, fields ...string) []byte {
	t.Helper()
	modinfo := []byte(strings.Join(fields, "\x00") + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modinfoOff := uint64(ehsize)
	shstrOff := modinfoOff + uint64(len(modinfo))
	shoff := (shstrOff + uint64(len(shstrtab)) + 7) &^ 7

	var buf bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shoff, Ehsize: ehsize, Shentsize: shentsize, Shnum: 3, Shstrndx: 2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	testkit.Must(t, binary.Write(&buf, binary.LittleEndian, hdr))
	buf.Write(modinfo)
	buf.Write(shstrtab)
	buf.Write(make([]byte, int(shoff)-buf.Len()))
	sections := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: modinfoOff, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: shstrOff, Size: uint64(len(shstrtab)), Addralign: 1},
	}
	testkit.Must(t, binary.Write(&buf, binary.LittleEndian, sections))
	return buf.Bytes()
}

// compress returns data as stored in a module file with the given name.
func compress(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch {
	case strings.HasSuffix(name, ".xz"):
		w, err := xz.NewWriter(&buf)
		testkit.Must(t, err)
		_, err = w.Write(data)
		testkit.Must(t, err)
		testkit.Must(t, w.Close())
	case strings.HasSuffix(name, ".zst"):
		w, err := zstd.NewWriter(&buf)
		testkit.Must(t, err)
		_, err = w.Write(data)
		testkit.Must(t, err)
		testkit.Must(t, w.Close())
	default:
		return data
	}
	return buf.Bytes()
}

// writeModules creates module files under dir: path → modinfo depends value ("" for none).
func writeModules(t *testing.T, dir string, mods map[string]string) {
	t.Helper()
	for p, deps := range mods {
		name, _ := moduleName(p)
		data := compress(t, p, elfModule(t, "license=GPL", "depends="+deps, "name="+name, "vermagic=6.1.0 SMP"))
		full := filepath.Join(dir, filepath.FromSlash(p))
		testkit.Must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		testkit.Must(t, os.WriteFile(full, data, 0o644))
	}
}

func TestGenerateModulesDep(t *testing.T) {
	dir := t.TempDir()
	writeModules(t, dir, map[string]string{
		"kernel/drivers/virtio/virtio.ko":          "",
		"kernel/drivers/virtio/virtio_ring.ko.xz":  "virtio",
		"kernel/drivers/block/virtio_blk.ko.zst":   "virtio_ring,virtio",
		"kernel/fs/nls/nls_iso8859-1.ko":           "",
		"kernel/fs/fat/vfat.ko":                    "fat,nls_iso8859_1",
		"kernel/fs/fat/fat.ko":                     "",
		"kernel/drivers/virtio/virtio_balloon.ko":  "virtio_ring",
		"kernel/drivers/virtio/virtio_mmio.ko.zst": "virtio,virtio_ring",
	})
	testkit.Must(t, GenerateModulesDep(dir))
	got, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	testkit.Must(t, err)
	want := `kernel/drivers/block/virtio_blk.ko.zst: kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_balloon.ko: kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_mmio.ko.zst: kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_ring.ko.xz: kernel/drivers/virtio/virtio.ko
kernel/fs/fat/fat.ko:
kernel/fs/fat/vfat.ko: kernel/fs/nls/nls_iso8859-1.ko kernel/fs/fat/fat.ko
kernel/fs/nls/nls_iso8859-1.ko:
`
	if string(got) != want {
		t.Errorf("modules.dep\n got:\n%s\nwant:\n%s", got, want)
	}

	k := &Kernel{Version: "test", ModulesDir: dir}
	order, err := k.ModuleClosure("vfat", "virtio-blk")
	testkit.Must(t, err)
	wantOrder := []string{"kernel/fs/fat/fat.ko", "kernel/fs/nls/nls_iso8859-1.ko", "kernel/fs/fat/vfat.ko",
		"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko.xz", "kernel/drivers/block/virtio_blk.ko.zst"}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("closure over generated modules.dep\n got %q\nwant %q", order, wantOrder)
	}
}

func TestGenerateModulesDepErrors(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string][]byte
		wantErr string
	}{
		{"unknown dependency", map[string][]byte{"kernel/a.ko": elfModule(t, "depends=b")}, "depends on b"},
		{"cycle", map[string][]byte{"kernel/a.ko": elfModule(t, "depends=b"), "kernel/b.ko": elfModule(t, "depends=a")}, "cycle"},
		{"not ELF", map[string][]byte{"kernel/a.ko": []byte("garbage")}, "kernel/a.ko"},
		{"no modinfo", map[string][]byte{"kernel/a.ko": bytes.Replace(elfModule(t, "depends="), []byte(".modinfo\x00"), []byte(".comment\x00"), 1)}, "no .modinfo"},
		{"duplicate name", map[string][]byte{"kernel/x/a.ko": elfModule(t, "depends="), "kernel/y/a.ko.xz": compress(t, ".xz", elfModule(t, "depends="))}, "twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for p, data := range tc.files {
				full := filepath.Join(dir, p)
				testkit.Must(t, os.MkdirAll(filepath.Dir(full), 0o755))
				testkit.Must(t, os.WriteFile(full, data, 0o644))
			}
			err := GenerateModulesDep(dir)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("GenerateModulesDep: %v; want error containing %q", err, tc.wantErr)
			}
			if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err == nil {
				t.Error("a failed GenerateModulesDep left a modules.dep behind")
			}
		})
	}
}

func TestParseDepends(t *testing.T) {
	tests := []struct {
		name, out, want string
	}{
		{"bookworm", "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n", "linux-image-6.1.0-56-amd64"},
		{"alternatives", "linux-image-amd64\n |Depends: linux-image-6.12.9-amd64\n  Depends: linux-image-6.12.9-amd64-unsigned\n", "linux-image-6.12.9-amd64"},
		{"virtual skipped", "linux-image-amd64\n  Depends: <linux-image-virtual>\n  Recommends: firmware\n  Depends: linux-image-6.1.0-1-amd64\n", "linux-image-6.1.0-1-amd64"},
		{"none", "linux-image-amd64\n  Recommends: apparmor\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDepends([]byte(tc.out))
			if tc.want == "" {
				if err == nil {
					t.Fatalf("parseDepends = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseDepends = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
