package bake

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"golang.org/x/sys/unix"

	"github.com/otabake/otabake/internal/schema"
	"github.com/otabake/otabake/internal/testkit"
)

func writeTree(t *testing.T, root string, files map[string]string, links map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range links {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
}

const debianOSRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
# a comment = kept
ID=debian
IMAGE_VERSION=old
HOME_URL="https://www.debian.org/"`

func TestBakeBuildInfoExact(t *testing.T) {
	root := t.TempDir()
	// UseBundleHash without an OTA path has nothing to go into: no ota.json.
	res, err := Bake(context.Background(), root, Options{System: "customized-efi-arm64", Version: "20250629165915", UseBundleHash: true})
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"name\": \"customized-efi-arm64\",\n  \"release\": {\n    \"id\": \"customized-efi-arm64@20250629165915\",\n    \"version\": \"20250629165915\"\n  }\n}"
	if got := testkit.ReadFile(t, filepath.Join(root, BuildInfoPath)); got != want {
		t.Fatalf("build info:\n%s\nwant:\n%s", got, want)
	}
	if string(res.BuildInfoJSON) != want {
		t.Fatalf("Result.BuildInfoJSON differs from the file")
	}
	if got := testkit.ReadFile(t, filepath.Join(root, OSRelease)); got != "IMAGE_ID=customized-efi-arm64\nIMAGE_VERSION=20250629165915\n" {
		t.Fatalf("created os-release: %q", got)
	}
	for _, p := range []string{OTADefaults, SystemTOML} {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Fatalf("%s written without being asked for (err %v)", p, err)
		}
	}
}

func TestBakeOSRelease(t *testing.T) {
	wantEdited := strings.Replace(debianOSRelease, "IMAGE_VERSION=old", "IMAGE_VERSION=\"1.0 rc\"", 1) + "\nIMAGE_ID=pc\n"
	tests := []struct {
		name   string
		files  map[string]string
		links  map[string]string
		edited string // path whose content must become wantEdited
	}{
		{"plain file", map[string]string{"etc/os-release": debianOSRelease}, nil, "etc/os-release"},
		{"relative symlink", map[string]string{"usr/lib/os-release": debianOSRelease}, map[string]string{"etc/os-release": "../usr/lib/os-release"}, "usr/lib/os-release"},
		{"absolute symlink is inside the rootfs", map[string]string{"usr/lib/os-release": debianOSRelease}, map[string]string{"etc/os-release": "/usr/lib/os-release"}, "usr/lib/os-release"},
		{"only usr/lib", map[string]string{"usr/lib/os-release": debianOSRelease}, nil, "usr/lib/os-release"},
		{"symlinked usr/lib", map[string]string{"usr/lib64/os-release": debianOSRelease}, map[string]string{"usr/lib": "lib64", "etc/os-release": "../usr/lib/os-release"}, "usr/lib64/os-release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tt.files, tt.links)
			if _, err := Bake(context.Background(), root, Options{System: "pc", Version: "1.0 rc"}); err != nil {
				t.Fatal(err)
			}
			if got := testkit.ReadFile(t, filepath.Join(root, tt.edited)); got != wantEdited {
				t.Fatalf("%s:\n%q\nwant\n%q", tt.edited, got, wantEdited)
			}
			for name, target := range tt.links {
				if got, err := os.Readlink(filepath.Join(root, name)); err != nil || got != target {
					t.Fatalf("symlink %s replaced: %q %v", name, got, err)
				}
			}
		})
	}
}

func TestBakeRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "os-release"), []byte("ID=host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := func(name string) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755)
			if err := unix.Mkfifo(filepath.Join(root, name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	zero := func(name string) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755)
			if err := unix.Mknod(filepath.Join(root, name), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name    string
		links   map[string]string
		files   map[string]string
		special func(t *testing.T, root string)
		root    bool // needs root (mknod)
		opts    Options
		want    string
	}{
		{name: "etc relative outside", links: map[string]string{"etc": "../../../../../../.." + outside}, want: "climbs above the root"},
		{name: "etc absolute host path", links: map[string]string{"etc": outside}, want: "dangles"},
		{name: "etc/rugix outside", links: map[string]string{"etc/rugix": "../../.."}, want: "climbs above the root"},
		{name: "os-release outside", links: map[string]string{"etc/os-release": "../../../../../../../../etc/os-release"}, files: map[string]string{"etc/rugix/x": ""}, want: "climbs above the root"},
		{name: "os-release linked to a host file", links: map[string]string{"etc/os-release": outside + "/os-release"}, files: map[string]string{"etc/rugix/x": ""}, want: "dangles"},
		{name: "os-release directory linked out", links: map[string]string{"usr/lib": "../../../../../../../.." + outside}, files: map[string]string{"etc/rugix/x": ""}, special: func(t *testing.T, root string) {
			os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release"))
		}, want: "climbs above the root"},
		{name: "link loop", links: map[string]string{"etc/otabake": "loop", "etc/loop": "otabake"}, opts: Options{OTAPath: "r/p/t"}, want: "too many levels"},
		{name: "not a directory", files: map[string]string{"etc/rugix": "file"}, want: "not a directory"},
		{name: "os-release is a FIFO", special: fifo("etc/os-release"), want: "etc/os-release is a named pipe (FIFO), not a regular file"},
		{name: "usr/lib/os-release is a FIFO", special: fifo("usr/lib/os-release"), links: map[string]string{"etc/os-release": "../usr/lib/os-release"}, want: "etc/os-release (resolved to usr/lib/os-release) is a named pipe (FIFO)"},
		{name: "os-release is a character device", root: true, special: zero("etc/os-release"), want: "etc/os-release is a character device"},
		{name: "os-release linked to /dev/zero", root: true, special: zero("dev/zero"), links: map[string]string{"etc/os-release": "/dev/zero"}, want: "resolved to dev/zero) is a character device"},
		{name: "os-release oversized", special: func(t *testing.T, root string) {
			os.MkdirAll(filepath.Join(root, "etc"), 0o755)
			f, err := os.Create(filepath.Join(root, "etc/os-release"))
			if err != nil {
				t.Fatal(err)
			}
			f.Truncate(24 << 30)
			f.Close()
		}, want: "etc/os-release is 25769803776 bytes, larger than the limit of 1048576 bytes"},
		{name: "system.toml is a FIFO", special: fifo("etc/rugix/system.toml"), opts: Options{Target: "efi-grub"}, want: "etc/rugix/system.toml is a named pipe (FIFO)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testkit.NeedRoot(t, "creating device nodes", "this check did not run")
			}
			root := t.TempDir()
			writeTree(t, root, tt.files, tt.links)
			if tt.special != nil {
				tt.special(t, root)
			}
			tt.opts.System, tt.opts.Version = "pc", "1"
			var err error
			done := make(chan struct{})
			go func() { defer close(done); _, err = Bake(context.Background(), root, tt.opts) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Bake did not return within 5 s (blocked on a FIFO or reading a device?)")
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			ents, _ := os.ReadDir(outside)
			if len(ents) != 1 || testkit.ReadFile(t, filepath.Join(outside, "os-release")) != "ID=host\n" {
				t.Fatalf("wrote outside the rootfs: %v", ents)
			}
		})
	}
}

// TestBakeAbsoluteLinksStayInside bakes a rootfs whose os-release is an absolute link, to a
// path that exists both inside the rootfs and on the build host: the rootfs's file is baked.
func TestBakeAbsoluteLinksStayInside(t *testing.T) {
	outside := t.TempDir()
	hostFile := filepath.Join(outside, "os-release")
	if err := os.WriteFile(hostFile, []byte("ID=host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	writeTree(t, root, map[string]string{hostFile: "ID=rootfs\n"}, map[string]string{"etc/os-release": hostFile})
	res, err := Bake(context.Background(), root, Options{System: "pc", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := testkit.ReadFile(t, hostFile); got != "ID=host\n" {
		t.Fatalf("the host's file changed: %q", got)
	}
	if got := testkit.ReadFile(t, filepath.Join(root, hostFile)); !strings.Contains(got, "ID=rootfs\nIMAGE_ID=pc\n") {
		t.Fatalf("the rootfs's file = %q", got)
	}
	if f := res.Files[1]; f.Path != OSRelease || f.Resolved != strings.TrimPrefix(hostFile, "/") {
		t.Fatalf("result = %+v", f)
	}
}

func TestBakeOTADefaultsAndSystemTOML(t *testing.T) {
	root := t.TempDir()
	_, err := Bake(context.Background(), root, Options{System: "rpi", Version: "2", ReleaseID: "custom", OTAPath: "fleet/rpi/stable", UseBundleHash: true, Target: "rpi-tryboot"})
	if err != nil {
		t.Fatal(err)
	}
	var ota map[string]any
	if err := json.Unmarshal([]byte(testkit.ReadFile(t, filepath.Join(root, OTADefaults))), &ota); err != nil {
		t.Fatal(err)
	}
	if ota["path"] != "fleet/rpi/stable" || ota["rugix"].(map[string]any)["useBundleHash"] != true || len(ota) != 2 {
		t.Fatalf("ota.json = %v", ota)
	}
	if !strings.Contains(testkit.ReadFile(t, filepath.Join(root, BuildInfoPath)), `"id": "custom"`) {
		t.Fatal("release id not used")
	}
	for _, tc := range []struct {
		target           string
		flow             string
		data, sysA, sysB int64
	}{{"efi-grub", "grub", 6, 4, 5}, {"generic-grub-efi", "grub", 6, 4, 5}, {"rpi-tryboot", "rpi-tryboot", 7, 5, 6}, {"rpi-uboot", "rpi-uboot", 7, 5, 6}} {
		data, err := SystemConfig(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			ConfigPartition struct{ Partition int64 } `toml:"config-partition"`
			DataPartition   struct{ Partition int64 } `toml:"data-partition"`
			BootFlow        struct{ Type string }     `toml:"boot-flow"`
			Slots           map[string]struct {
				Type      string
				Partition int64
				Immutable bool
			}
			BootGroups map[string]struct{ Slots map[string]string } `toml:"boot-groups"`
		}
		if _, err := toml.Decode(string(data), &cfg); err != nil {
			t.Fatalf("%s: %v", tc.target, err)
		}
		if cfg.ConfigPartition.Partition != 1 || cfg.DataPartition.Partition != tc.data || cfg.BootFlow.Type != tc.flow ||
			cfg.Slots["boot-a"].Partition != 2 || cfg.Slots["boot-b"].Partition != 3 ||
			cfg.Slots["system-a"].Partition != tc.sysA || !cfg.Slots["system-a"].Immutable ||
			cfg.Slots["system-b"].Partition != tc.sysB || cfg.Slots["boot-a"].Immutable ||
			cfg.BootGroups["b"].Slots["system"] != "system-b" || cfg.BootGroups["a"].Slots["boot"] != "boot-a" {
			t.Fatalf("%s: %+v", tc.target, cfg)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		opts Options
		want string
	}{
		{Options{Version: "1"}, "system name is empty"},
		{Options{System: "a"}, "version is empty"},
		{Options{System: "a", Version: "1\n"}, "control character"},
		{Options{System: "a", Version: "1", OTAPath: "a/b"}, "ota-path"},
		{Options{System: "a", Version: "1", OTAPath: "a/b/c/d"}, "ota-path"},
		{Options{System: "a", Version: "1", OTAPath: "a/-b/c"}, "invalid package"},
		{Options{System: "a", Version: "1", Target: "x86"}, "unknown image target"},
	}
	for _, tt := range tests {
		err := tt.opts.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want %q", tt.opts, err, tt.want)
		}
		if _, err := Bake(context.Background(), t.TempDir(), tt.opts); err == nil {
			t.Errorf("%+v: Bake accepted invalid options", tt.opts)
		}
	}
}

type snap struct {
	data  string
	mtime time.Time
	mode  fs.FileMode
}

func snapshot(t *testing.T, root string) map[string]snap {
	t.Helper()
	m := map[string]snap{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		s := snap{mtime: fi.ModTime(), mode: fi.Mode()}
		if fi.Mode().IsRegular() {
			s.data = testkit.ReadFile(t, p)
		} else if fi.Mode()&fs.ModeSymlink != 0 {
			s.data, _ = os.Readlink(p)
		}
		m[p] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBakeIdempotent(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"usr/lib/os-release": debianOSRelease}, map[string]string{"etc/os-release": "../usr/lib/os-release"})
	opts := Options{System: "pc", Version: "1", OTAPath: "r/p/t", Target: "efi-grub"}
	res, err := Bake(context.Background(), root, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Files {
		if !f.Changed {
			t.Fatalf("first run: %s not changed", f.Path)
		}
	}
	// Make a rewrite visible even on filesystems with coarse timestamps.
	old := time.Unix(1_000_000_000, 0)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	res, err = Bake(context.Background(), root, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Files {
		if f.Changed {
			t.Fatalf("second run changed %s", f.Path)
		}
	}
	after := snapshot(t, root)
	if len(before) != len(after) {
		t.Fatalf("second run changed the set of files: %d -> %d", len(before), len(after))
	}
	for p, s := range before {
		if after[p] != s {
			t.Fatalf("second run changed %s: %+v -> %+v", p, s, after[p])
		}
	}
}

func TestSetOSRelease(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "IMAGE_ID=x\nIMAGE_VERSION=1\n"},
		{"ID=a", "ID=a\nIMAGE_ID=x\nIMAGE_VERSION=1\n"},
		{"IMAGE_ID=old\r\nID=a\n", "IMAGE_ID=x\nID=a\nIMAGE_VERSION=1\n"},
		{"#IMAGE_ID=c\n IMAGE_VERSION=\"0\"\n", "#IMAGE_ID=c\nIMAGE_VERSION=1\nIMAGE_ID=x\n"},
	}
	for _, tt := range tests {
		if got := string(SetOSRelease([]byte(tt.in), map[string]string{"IMAGE_ID": "x", "IMAGE_VERSION": "1"})); got != tt.want {
			t.Errorf("SetOSRelease(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := quoteOSRelease(`a "b" $c`); got != `"a \"b\" \$c"` {
		t.Errorf("quote = %s", got)
	}
}

// TestBakeEngine sets the agent's engine in agent.toml, keeping the other settings, as the
// otabake-ota recipe does, and the result is a valid agent.toml.
func TestBakeEngine(t *testing.T) {
	root := t.TempDir()
	old := "# site settings\nengine = \"rugix\"\ntransport = \"hub\"\n\n[hub]\nurl = \"http://127.0.0.1:8080\""
	if err := os.MkdirAll(filepath.Join(root, "etc/otabake"), 0o755); err != nil {
		t.Fatal(err)
	}
	testkit.WriteFile(t, filepath.Join(root, AgentSettings), old)
	for i := range 2 {
		res, err := Bake(context.Background(), root, Options{System: "pc", Version: "1", Engine: "rauc"})
		if err != nil {
			t.Fatal(err)
		}
		got := testkit.ReadFile(t, filepath.Join(root, AgentSettings))
		want := "engine = \"rauc\"\n# site settings\ntransport = \"hub\"\n\n[hub]\nurl = \"http://127.0.0.1:8080\"\n"
		if got != want {
			t.Fatalf("agent.toml = %q, want %q", got, want)
		}
		if err := schema.ValidateTOML(schema.KindAgent, []byte(got)); err != nil {
			t.Error(err)
		}
		changed := false
		for _, f := range res.Files {
			if f.Path == AgentSettings {
				changed = f.Changed
			}
		}
		if changed != (i == 0) {
			t.Errorf("run %d: agent.toml changed = %v", i, changed)
		}
	}
	fresh := t.TempDir()
	if _, err := Bake(context.Background(), fresh, Options{System: "pc", Version: "1", Engine: "rauc"}); err != nil {
		t.Fatal(err)
	}
	if got := testkit.ReadFile(t, filepath.Join(fresh, AgentSettings)); got != "engine = \"rauc\"\n" {
		t.Errorf("new agent.toml = %q", got)
	}
	if _, err := Bake(context.Background(), fresh, Options{System: "pc", Version: "1", Engine: "swupdate"}); err == nil || !strings.Contains(err.Error(), "want rugix or rauc") {
		t.Errorf("engine swupdate: err = %v", err)
	}
}

// TestBakeRaucSystemConf: a RAUC efi-grub system gets /etc/rauc/system.conf and no Rugix
// system.toml; a compatible without engine rauc and target efi-grub is refused.
func TestBakeRaucSystemConf(t *testing.T) {
	root := t.TempDir()
	if _, err := Bake(context.Background(), root, Options{System: "pc", Version: "1", Engine: "rauc", Target: "efi-grub", RaucCompatible: "acme"}); err != nil {
		t.Fatal(err)
	}
	conf := testkit.ReadFile(t, filepath.Join(root, RaucSystemConf))
	for _, want := range []string{"compatible=acme\n", "bootloader=grub\n", "path=/" + RaucKeyring + "\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("system.conf lacks %q:\n%s", want, conf)
		}
	}
	if _, err := os.Stat(filepath.Join(root, SystemTOML)); err == nil {
		t.Error("a RAUC system got Rugix Ctrl's system.toml")
	}
	for _, o := range []Options{
		{System: "pc", Version: "1", Target: "efi-grub", RaucCompatible: "acme"},
		{System: "pc", Version: "1", Engine: "rauc", Target: "rpi-tryboot", RaucCompatible: "acme"},
		{System: "pc", Version: "1", Engine: "rauc", Target: "efi-grub", RaucCompatible: "a\nb"},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
