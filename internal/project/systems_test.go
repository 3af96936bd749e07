package project

import (
	"strings"
	"testing"
)

func TestMalformedConfig(t *testing.T) {
	tests := []struct {
		name, toml, want string
	}{
		{"syntax error", "[hub]\nurl = \"https://x\n", "otabake.toml:2:"},
		{"syntax error in table header", "[hub\n", "otabake.toml:2: expected '.' or ']' to end table name"},
		{"unknown top-level key", "colour = \"red\"\n", "otabake.toml:1: unknown key colour (allowed at the top level: hub, release, systems)"},
		{"unknown hub key", "[hub]\nurl = \"https://x.example\"\n\nrepsitory = \"x\"\n", "otabake.toml:4: unknown key hub.repsitory: did you mean repository? (allowed in [hub]: default_tag, package, repository, token_env, url)"},
		{"token in file", "[hub]\ntoken = \"u_sk_x\"\n", "otabake.toml:2: unknown key hub.token"},
		{"unknown system key", "[systems.a]\nrootfs = \"r\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\nsize = \"16G\"\n", "otabake.toml:5: unknown key systems.a.size: did you mean sizes? (allowed in [systems.a]: architecture, backend, boot, bundle, engine, grub, rauc, rootfs, signing, sizes, target, use_bundle_hash, yocto)"},
		{"unknown nested table", "[systems.a]\nrootfs = \"r\"\n[systems.a.bundel]\nhash = \"sha256\"\n", "otabake.toml:3: unknown key systems.a.bundel"},
		{"unknown key in inline table", "[systems.a]\nrootfs = \"r\"\nbundle = { chunker = \"casync-64\", hsh = \"x\" }\n", "otabake.toml:3: unknown key systems.a.bundle.hsh"},
		{"wrong type string for int", "[systems.a]\nrootfs = \"r\"\n\n[systems.a.bundle]\nxz_preset = \"6\"\n", "otabake.toml:5: systems.a.bundle.xz_preset: wrong type"},
		{"wrong type int for string", "[hub]\nrepository = 12\n", "otabake.toml:2: hub.repository: wrong type"},
		{"wrong type table for string", "[hub]\n[hub.url]\nx = 1\n", "otabake.toml:2: hub.url: wrong type"},
		{"bad size", "[systems.a]\nrootfs = \"r\"\n[systems.a.sizes]\nboot = \"256 parsecs\"\n", "otabake.toml:4: systems.a.sizes.boot: invalid size \"256 parsecs\""},
		{"bad target", "[systems.a]\nrootfs = \"r\"\ntarget = \"generic-grub-efi\"\n", "otabake.toml:3: systems.a.target: unknown value \"generic-grub-efi\"; want efi-grub, rpi-tryboot, rpi-uboot"},
		{"bad arch", "[systems.a]\narchitecture = \"x86_64\"\n", "otabake.toml:2: systems.a.architecture: unknown value \"x86_64\"; want amd64, arm64, armhf"},
		{"bad backend", "[systems.a]\nbackend = \"docker\"\n", "otabake.toml:2: systems.a.backend: unknown value \"docker\"; want native, bakery, yocto"},
		{"bad chunker", "[systems.a.bundle]\nchunker = \"casync-0\"\n", "otabake.toml:2: systems.a.bundle.chunker: unknown chunker \"casync-0\""},
		{"chunker otabake cannot read back", "[systems.a.bundle]\nchunker = \"casync-16384\"\n", "otabake handles blocks of at most 33554432 bytes"},
		{"bad hash", "[systems.a.bundle]\nhash = \"md5\"\n", "otabake.toml:2: systems.a.bundle.hash: unknown value \"md5\""},
		{"bad compression", "[systems.a.bundle]\ncompression = \"zstd\"\n", "systems.a.bundle.compression: unknown value \"zstd\"; want xz, none"},
		{"bad preset", "[systems.a.bundle]\nxz_preset = 12\n", "otabake.toml:2: systems.a.bundle.xz_preset: 12 is out of range; want 0..9"},
		{"no backend", "[systems.a]\ntarget = \"efi-grub\"\n", "otabake.toml:1: systems.a: no build backend"},
		{"native needs target", "[systems.a]\nrootfs = \"r\"\narchitecture = \"amd64\"\n", "otabake.toml:1: systems.a: the native backend needs target"},
		{"native needs arch", "[systems.a]\nrootfs = \"r\"\ntarget = \"efi-grub\"\n", "systems.a: the native backend needs architecture"},
		{"native needs rootfs", "[systems.a]\nbackend = \"native\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\n", "the native backend needs rootfs"},
		{"bakery without bakery file", "[systems.a]\nbackend = \"bakery\"\n", "otabake.toml:2: systems.a: backend bakery, but rugix-bakery.toml has no [systems.a]"},
		{"yocto needs machine", "[systems.a]\nbackend = \"yocto\"\n", "the yocto backend needs yocto.machine"},
		{"grub on rpi", "[systems.a]\nrootfs = \"r\"\ntarget = \"rpi-tryboot\"\narchitecture = \"arm64\"\n[systems.a.grub]\nefi_binary = \"g.efi\"\n", "otabake.toml:6: systems.a.grub.efi_binary: only applies to target efi-grub"},
		{"cert without key", "[systems.a]\nrootfs = \"r\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\n[systems.a.signing]\ncert = \"c.pem\"\n", "otabake.toml:5: systems.a.signing: cert, chain and password_env need key"},
		{"key without cert", "[systems.a]\nrootfs = \"r\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\nsigning = { key = \"k.pem\" }\n", "otabake.toml:5: systems.a.signing: key needs cert"},
		{"roots without key", "[systems.a]\nrootfs = \"r\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\n[systems.a.signing]\nroots = [\"ca.pem\"]\n", "otabake.toml:6: systems.a.signing.roots: roots need key and cert"},
		{"empty root", "[systems.a]\nrootfs = \"r\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\n[systems.a.signing]\nkey = \"k\"\ncert = \"c\"\nroots = [\"\"]\n", "systems.a.signing.roots[0]: empty path"},
		{"insecure and key", "[systems.a]\nrootfs = \"r\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\n[systems.a.signing]\nkey = \"k\"\ncert = \"c\"\ninsecure_unsigned = true\n", "insecure_unsigned contradicts key"},
		{"use_bundle_hash not a bool", "[systems.a]\nrootfs = \"r\"\nuse_bundle_hash = \"yes\"\n", "systems.a.use_bundle_hash: wrong type"},
		{"bad engine", "[systems.a]\nrootfs = \"r\"\nengine = \"swupdate\"\n", "otabake.toml:3: systems.a.engine: unknown value \"swupdate\"; want rugix, rauc"},
		{"rauc on rpi", "[systems.a]\nrootfs = \"r\"\ntarget = \"rpi-tryboot\"\narchitecture = \"arm64\"\nengine = \"rauc\"\nsigning = { key = \"k\", cert = \"c\" }\n", "otabake.toml:5: systems.a.engine: the native backend builds RAUC systems for target efi-grub only"},
		{"rauc unsigned", "[systems.a]\nrootfs = \"r\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\nengine = \"rauc\"\n", "systems.a: engine rauc needs signing.key and signing.cert"},
		{"rauc with bundle hash", "[systems.a]\nrootfs = \"r\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\nengine = \"rauc\"\nuse_bundle_hash = true\nsigning = { key = \"k\", cert = \"c\" }\n", "otabake.toml:6: systems.a.use_bundle_hash: a Rugix bundle hash"},
		{"compatible without rauc", "[systems.a]\nrootfs = \"r\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\nrauc.compatible = \"x\"\n", "otabake.toml:5: systems.a.rauc.compatible: only applies to engine = \"rauc\", not \"rugix\""},
		{"bad compatible", "[systems.a]\nrootfs = \"r\"\nengine = \"rauc\"\n[systems.a.rauc]\ncompatible = \" x\"\n", "otabake.toml:5: systems.a.rauc.compatible: \" x\" starts or ends with white space"},
		{"bad system name", "[systems.\"my system\"]\nrootfs = \"r\"\n", `otabake.toml:1: invalid system name "my system"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, map[string]string{FileName: tt.toml})
			_, err := Load(dir, LoadOptions{Env: []string{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

const fullConfig = `# otabake project
[hub]
url = "https://eu.nexigon.cloud/"
repository = "fleet"
package = "os"
default_tag = "beta"

[release]
build_tag = "rel-{time}-{commit}"
floating_tag = "latest-{branch}"
source_date_epoch = 1700000000

[systems.pc]
target = "efi-grub"
architecture = "amd64"
rootfs = "rootfs/pc"
sizes = { config = "256M", boot = "256MiB", system = "2G", total = "4GB" }
grub.efi_binary = "grubx64.efi"

[systems.pc.bundle]
chunker = "fixed-4"
hash = "sha256"
deduplicate = false
compression = "none"
xz_preset = 9

[systems.pc.signing]
key = "keys/k.pem"
cert = "keys/c.pem"
chain = ["keys/ca.pem"]
password_env = "KEY_PASS"

[systems.yocto-qemu.yocto]
machine = "qemux86-64"
image = "core-image-minimal"
`

func TestFullConfig(t *testing.T) {
	dir := writeProject(t, map[string]string{FileName: fullConfig})
	cfg, err := Load(dir, LoadOptions{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hub.URL != "https://eu.nexigon.cloud" || cfg.Hub.Repository != "fleet" || cfg.Hub.Package != "os" || cfg.Hub.DefaultTag != "beta" {
		t.Errorf("hub: %+v", cfg.Hub)
	}
	if r := cfg.Release; r.BuildTagPattern != "rel-{time}-{commit}" || r.FloatingTagPattern != "latest-{branch}" || r.SourceDateEpoch == nil || *r.SourceDateEpoch != 1700000000 {
		t.Errorf("release: %+v", r)
	}
	if len(cfg.Systems) != 2 || cfg.Systems[0].Name != "pc" || cfg.Systems[1].Name != "yocto-qemu" {
		t.Fatalf("systems: %v", cfg.Systems)
	}
	pc := cfg.Systems[0]
	want := System{Name: "pc", Target: "efi-grub", Arch: "amd64", Backend: "native", Rootfs: "rootfs/pc",
		Sizes:   Sizes{Config: 256 << 20, Boot: 256 << 20, System: 2 << 30, Total: 4e9},
		Bundle:  Bundle{Chunker: "fixed-4", Hash: "sha256", Deduplicate: false, Compression: "none", XZPreset: 9},
		Signing: Signing{Key: "keys/k.pem", Cert: "keys/c.pem", Chain: []string{"keys/ca.pem"}, PasswordEnv: "KEY_PASS"},
		Grub:    Grub{EFIBinary: "grubx64.efi"}, Source: "otabake.toml:13"}
	if got := *pc; !equalSystem(got, want) {
		t.Errorf("pc:\n got %+v\nwant %+v", got, want)
	}
	y := cfg.Systems[1]
	if y.Backend != BackendYocto || y.Yocto.DeployDir != "build/tmp/deploy/images/qemux86-64" || y.Bundle != defaultBundle() || y.Source != "otabake.toml:33" {
		t.Errorf("yocto system: %+v", y)
	}
	if _, err := cfg.System("pc"); err != nil {
		t.Error(err)
	}
	if _, err := cfg.System("nope"); err == nil || !strings.Contains(err.Error(), "known systems are pc, yocto-qemu") {
		t.Errorf("System(nope) err = %v", err)
	}
	if p := cfg.Path("rootfs/pc"); p != dir+"/rootfs/pc" {
		t.Errorf("Path = %s", p)
	}
}

func equalSystem(a, b System) bool {
	return a.Name == b.Name && a.Target == b.Target && a.Arch == b.Arch && a.Backend == b.Backend && a.Rootfs == b.Rootfs &&
		a.Sizes == b.Sizes && a.Bundle == b.Bundle && a.Signing.Key == b.Signing.Key && a.Signing.Cert == b.Signing.Cert &&
		strings.Join(a.Signing.Chain, ",") == strings.Join(b.Signing.Chain, ",") && a.Signing.PasswordEnv == b.Signing.PasswordEnv &&
		a.Yocto == b.Yocto && a.Grub == b.Grub && a.Bakery == b.Bakery && a.Source == b.Source
}

const bakeryToml = `[repositories]
nexigon = { git = "https://github.com/nexigon/nexigon-rugix.git", branch = "v0.2" }

[systems.customized-efi-amd64]
layer = "customized"
architecture = "amd64"
target = "generic-grub-efi"

[systems.customized-pi4]
layer = "customized-pi"
architecture = "arm64"
target = "rpi-tryboot"
size = "16G"   # ignored by Bakery too: it belongs under image

[systems.customized-pi4.image]
size = "8G"

[systems.armv7-board]
layer = "customized"
architecture = "armv7"
options = { use-squashfs = { no-compression = true } }
`

func TestBakerySystems(t *testing.T) {
	dir := writeProject(t, map[string]string{
		BakeryFileName: bakeryToml,
		FileName: `[systems.customized-pi4.bundle]
compression = "none"

[systems.customized-pi4.signing]
key = "k.pem"
cert = "c.pem"

[systems.native-extra]
rootfs = "out/rootfs.tar"
target = "rpi-uboot"
architecture = "armhf"

[systems.armv7-board]
rootfs = "rootfs/"
target = "rpi-uboot"
`,
	})
	cfg, err := Load(dir, LoadOptions{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range cfg.Systems {
		names = append(names, s.Name+"/"+s.Backend+"/"+s.Target+"/"+s.Arch)
	}
	want := "customized-efi-amd64/bakery/efi-grub/amd64 customized-pi4/bakery/rpi-tryboot/arm64 armv7-board/native/rpi-uboot/armhf native-extra/native/rpi-uboot/armhf"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("systems:\n got %s\nwant %s", got, want)
	}
	pi, _ := cfg.System("customized-pi4")
	if pi.Sizes.Total != 8<<30 || pi.Bakery.Layer != "customized-pi" || pi.Bakery.Target != "rpi-tryboot" ||
		pi.Bundle.Compression != "none" || pi.Bundle.Chunker != DefaultChunker || pi.Signing.Key != "k.pem" {
		t.Errorf("pi4: %+v", pi)
	}
	if pi.Source != "rugix-bakery.toml:9, otabake.toml:1" {
		t.Errorf("pi4 source = %q", pi.Source)
	}
	efi, _ := cfg.System("customized-efi-amd64")
	if efi.Source != "rugix-bakery.toml:4" || efi.Bakery.Architecture != "amd64" {
		t.Errorf("efi: %+v", efi)
	}
	if got := strings.Join(cfg.Files, ","); got != ".env,otabake.toml,rugix-bakery.toml" && got != "otabake.toml,rugix-bakery.toml" {
		t.Errorf("files = %s", got)
	}
}

func TestBakeryErrors(t *testing.T) {
	tests := []struct{ name, toml, want string }{
		{"missing layer", "[systems.a]\narchitecture = \"amd64\"\n", "rugix-bakery.toml:1: systems.a: missing layer"},
		{"missing arch", "[systems.a]\nlayer = \"l\"\n", "rugix-bakery.toml:1: systems.a: missing architecture"},
		{"bad target", "[systems.a]\nlayer = \"l\"\narchitecture = \"amd64\"\ntarget = \"efi\"\n", "rugix-bakery.toml:4: systems.a.target: unknown Rugix Bakery target \"efi\""},
		{"bad arch", "[systems.a]\nlayer = \"l\"\narchitecture = \"riscv64\"\n", "rugix-bakery.toml:3: systems.a.architecture: unknown Rugix Bakery architecture \"riscv64\""},
		{"bad size", "[systems.a]\nlayer = \"l\"\narchitecture = \"amd64\"\n[systems.a.image]\nsize = \"big\"\n", "rugix-bakery.toml:5: systems.a.image.size: invalid size"},
		{"syntax", "\n[systems.a\n", "rugix-bakery.toml:3: expected '.' or ']'"},
		{"wrong type", "[systems.a]\nlayer = 1\n", "rugix-bakery.toml:2: systems.a.layer: wrong type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeProject(t, map[string]string{BakeryFileName: tt.toml}), LoadOptions{Env: []string{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant %q", err, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"256M", 256 << 20, true}, {"256MiB", 256 << 20, true}, {"256MB", 256e6, true}, {"1GiB", 1 << 30, true},
		{"1g", 1 << 30, true}, {"16G", 16 << 30, true}, {"4096", 4096, true}, {"100_000", 100000, true},
		{"1.5K", 1536, true}, {"2 GiB", 2 << 30, true}, {"0", 0, true}, {"512B", 512, true}, {"1kB", 1000, true},
		{"", 0, false}, {"M", 0, false}, {"-1M", 0, false}, {"12 parsecs", 0, false}, {"1.2.3M", 0, false},
		{"9999999999E", 0, false}, {"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"256M", "1.5GiB", "4096", "1_000kB", "E", "9.9E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSize(s); err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}

func TestExpandPattern(t *testing.T) {
	vals := map[string]string{"time": "20260101120000", "commit": "abc1234", "branch": "feature-x"}
	tests := []struct{ pattern, want, err string }{
		{"build-{time}-{commit}", "build-20260101120000-abc1234", ""},
		{"latest-build-{branch}", "latest-build-feature-x", ""},
		{"static", "static", ""},
		{"b-{sha}", "", "unknown placeholder {sha}"},
		{"b-{time", "", "unmatched '{'"},
		{"b-}", "", "unmatched '}'"},
	}
	for _, tt := range tests {
		got, err := ExpandPattern(tt.pattern, vals)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, want %q", tt.pattern, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q = %q, %v; want %q", tt.pattern, got, err, tt.want)
		}
	}
	if _, err := ExpandPattern("{commit}", map[string]string{}); err == nil {
		t.Error("missing value accepted")
	}
}

func FuzzLoadConfig(f *testing.F) {
	f.Add(fullConfig)
	f.Add("[hub]\nurl = \"https://x\n")
	f.Add("[systems.a]\nrootfs = \"r\"\nbundle = { chunker = \"casync-64\", hsh = \"x\" }\n")
	f.Add("a.b.\"c.d\" = '''x\n[y]\n'''\n[[t]]\nk = [\n1,\n]\n")
	f.Fuzz(func(t *testing.T, data string) {
		var fc fileConfig
		doc, err := decodeTOML(FileName, []byte(data), &fc, true)
		if err != nil {
			if !strings.HasPrefix(err.Error(), FileName) {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		_ = doc.where("systems", "x", "target")
		if _, err := bakerySystems(BakeryFileName, []byte(data)); err != nil && !strings.HasPrefix(err.Error(), BakeryFileName) {
			t.Fatalf("error without file name: %v", err)
		}
	})
}

// TestTrustSettings: the settings that decide how a system's devices verify their next update.
func TestTrustSettings(t *testing.T) {
	const base = "[systems.a]\nrootfs = \"r\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\n"
	for _, tt := range []struct {
		name, toml string
		want       func(s *System) bool
	}{
		{"defaults", base, func(s *System) bool {
			return !s.UseBundleHash && !s.Signing.InsecureUnsigned && s.Signing.Roots == nil
		}},
		{"use_bundle_hash", base + "use_bundle_hash = true\n", func(s *System) bool { return s.UseBundleHash }},
		{"roots", base + "[systems.a.signing]\nkey = \"k\"\ncert = \"c\"\nroots = [\"ca1.pem\", \"ca2.pem\"]\n", func(s *System) bool {
			return len(s.Signing.Roots) == 2 && s.Signing.Roots[1] == "ca2.pem"
		}},
		{"insecure", base + "signing = { insecure_unsigned = true }\n", func(s *System) bool { return s.Signing.InsecureUnsigned }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, map[string]string{FileName: tt.toml})
			cfg, err := Load(dir, LoadOptions{Env: []string{}})
			if err != nil {
				t.Fatal(err)
			}
			s, err := cfg.System("a")
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(s) {
				t.Errorf("system = %+v", *s)
			}
		})
	}
}

func TestEngine(t *testing.T) {
	const base = "[systems.a]\nrootfs = \"r\"\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\nsigning = { key = \"k\", cert = \"c\" }\n"
	for _, tc := range []struct {
		name, extra, engine, compatible string
	}{
		{"default", "", EngineRugix, ""},
		{"rugix", "engine = \"rugix\"\n", EngineRugix, ""},
		{"rauc", "engine = \"rauc\"\n", EngineRauc, "a"},
		{"rauc compatible", "engine = \"rauc\"\n[systems.a.rauc]\ncompatible = \"Acme Gadget v2\"\n", EngineRauc, "Acme Gadget v2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeProject(t, map[string]string{FileName: base + tc.extra})
			cfg, err := Load(dir, LoadOptions{Env: []string{}})
			if err != nil {
				t.Fatal(err)
			}
			s := cfg.Systems[0]
			if s.Engine != tc.engine || s.Rauc.Compatible != tc.compatible {
				t.Errorf("engine %q, compatible %q; want %q, %q", s.Engine, s.Rauc.Compatible, tc.engine, tc.compatible)
			}
		})
	}
}
