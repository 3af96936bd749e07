package project

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// File names the loader reads from the project directory.
const (
	FileName       = "otabake.toml"
	DotEnvFileName = ".env"
	NexigonCLIFile = ".nexigon-cli.toml"
	BakeryFileName = "rugix-bakery.toml"
)

// Targets otabake builds images for (rugix-images.md §2). Rugix Bakery's
// "generic-grub-efi" is read as TargetEFIGrub.
const (
	TargetEFIGrub    = "efi-grub"
	TargetRPiTryboot = "rpi-tryboot"
	TargetRPiUBoot   = "rpi-uboot"
)

// Architectures (Debian names).
const (
	ArchAMD64 = "amd64"
	ArchARM64 = "arm64"
	ArchARMHF = "armhf"
)

// Build backends: how build-release produces build/<system>/.
const (
	// BackendNative assembles everything in otabake from a root filesystem.
	BackendNative = "native"
	// BackendBakery runs ./run-bakery and post-processes its output.
	BackendBakery = "bakery"
	// BackendYocto collects the artifacts of a Yocto deploy directory.
	BackendYocto = "yocto"
)

// Update engines: what installs a system's updates on the device, and so which bundle
// build-release writes. The names are otabake-agent's (internal/agent/engine.New, agent.toml's
// engine).
const (
	// EngineRugix is Rugix Ctrl with Rugix bundles (system.rugixb), the default.
	EngineRugix = "rugix"
	// EngineRauc is RAUC with RAUC bundles (system.raucb).
	EngineRauc = "rauc"
)

// Defaults applied when nothing configures a value.
const (
	DefaultTag                = "stable"
	DefaultBuildTagPattern    = "build-{time}-{commit}"
	DefaultFloatingTagPattern = "latest-build-{branch}"
	DefaultChunker            = "casync-64"
	DefaultHash               = "sha512-256"
	DefaultCompression        = "xz"
	DefaultXZPreset           = 6
	DefaultTokenEnv           = "NEXIGON_TOKEN"
)

// maxNameLen is the Hub's limit for repository, package and tag names (nexigon-api.md §2.0).
const maxNameLen = 128

// Config is the effective configuration of a project.
type Config struct {
	// Dir is the absolute project directory; relative paths in the configuration are relative
	// to it (see Config.Path).
	Dir     string    `json:"dir"`
	Hub     Hub       `json:"hub"`
	Release Release   `json:"release"`
	Systems []*System `json:"systems"`
	// Files lists the configuration files that were read, in precedence order (lowest last).
	Files []string `json:"files"`
	// Warnings are problems that did not stop the load, such as a deployment token skipped.
	// They never contain a secret.
	Warnings []string `json:"warnings,omitempty"`

	// state is behind a pointer so that printing a Config with %v never shows the raw
	// environment or .env values (fmt does not call String on unexported fields).
	state *configState
}

type configState struct {
	settings []Setting
	env      map[string]string
	dotenv   map[string]DotEnvEntry
}

// Hub says which Hub to publish to and under which package.
type Hub struct {
	// URL of Nexigon Hub; "" means the embedded local Hub under .otabake/hub.
	URL string `json:"url"`
	// URLSource names where URL came from ("flag --hub-url", ".env:1", "default", …).
	URLSource string `json:"urlSource"`
	// Token is the build side's credential: always a user or organization API token, or empty.
	Token Secret `json:"token"`
	// TokenSource names where Token came from; TokenKind is its kind ("" when empty).
	TokenSource string    `json:"tokenSource,omitempty"`
	TokenKind   TokenKind `json:"tokenKind,omitempty"`
	// SkippedTokens say which tokens were found but not used, and why ("NEXIGON_TOKEN in
	// .env:2 is a device deployment token …"); never the values.
	SkippedTokens []string `json:"skippedTokens,omitempty"`
	// TokenEnv is the environment variable the token is read from (NEXIGON_TOKEN unless
	// [hub] token_env names another one).
	TokenEnv   string `json:"tokenEnv"`
	Repository string `json:"repository"`
	Package    string `json:"package"`
	// DefaultTag is the floating tag devices track and promote-release moves by default.
	DefaultTag string `json:"defaultTag"`
}

// Release holds the release identity settings. BuildTag and FloatingTag are pinned values
// (from BUILD_TAG/FLOATING_TAG or flags) and win over the patterns when set.
type Release struct {
	BuildTag           string `json:"buildTag,omitempty"`
	FloatingTag        string `json:"floatingTag,omitempty"`
	BuildTagPattern    string `json:"buildTagPattern"`
	FloatingTagPattern string `json:"floatingTagPattern"`
	// SourceDateEpoch is SOURCE_DATE_EPOCH (seconds since 1970, UTC), nil when unset.
	SourceDateEpoch *int64 `json:"sourceDateEpoch,omitempty"`
}

// System is one buildable system (an image plus its update bundle), a [systems.NAME] table of
// otabake.toml or rugix-bakery.toml.
type System struct {
	Name    string `json:"name"`
	Target  string `json:"target,omitempty"`
	Arch    string `json:"architecture,omitempty"`
	Backend string `json:"backend"`
	// Engine is the update engine of the system's devices, EngineRugix or EngineRauc.
	Engine string `json:"engine"`
	// Rauc holds the settings of an EngineRauc system.
	Rauc Rauc `json:"rauc,omitzero"`
	// Rootfs is the native backend's input: a directory or a tarball, relative to Config.Dir.
	Rootfs string `json:"rootfs,omitempty"`
	// Boot is an optional directory of boot-partition files (Bakery's roots/boot), relative to
	// Config.Dir: a grub.cfg second stage with a console= argument, a kernel, firmware.
	// Without it the native backend takes kernel and initrd (or firmware) from the rootfs.
	Boot    string  `json:"boot,omitempty"`
	Sizes   Sizes   `json:"sizes"`
	Bundle  Bundle  `json:"bundle"`
	Signing Signing `json:"signing"`
	// UseBundleHash makes the system's devices install with the bundle hash the Hub publishes
	// (rugix-ctrl --bundle-hash, 0.8.x --verify-bundle): ota.json's rugix.useBundleHash.
	UseBundleHash bool   `json:"useBundleHash"`
	Yocto         Yocto  `json:"yocto"`
	Grub          Grub   `json:"grub"`
	Bakery        Bakery `json:"bakery"`
	// Source names where the system is defined ("rugix-bakery.toml:5, otabake.toml:12").
	Source string `json:"source"`
}

// Sizes are partition and image sizes in bytes; 0 means the target's default.
type Sizes struct {
	Config int64 `json:"config"`
	Boot   int64 `json:"boot"`
	System int64 `json:"system"`
	// Total is the size of the whole image file.
	Total int64 `json:"total"`
}

// Bundle are the Rugix update bundle options (rugix-bundle.md).
type Bundle struct {
	// Chunker is "casync-<avg KiB>" or "fixed-<KiB>".
	Chunker string `json:"chunker"`
	// Hash is the block hash algorithm: sha256, sha512-256 or sha512.
	Hash        string `json:"hash"`
	Deduplicate bool   `json:"deduplicate"`
	// Compression of blocks: "xz" or "none".
	Compression string `json:"compression"`
	XZPreset    int    `json:"xzPreset"`
}

// Signing configures the CMS signature of bundles. An empty Key means unsigned.
type Signing struct {
	// Key is a PEM file relative to the project, or a KMS URI.
	Key   string   `json:"key,omitempty"`
	Cert  string   `json:"cert,omitempty"`
	Chain []string `json:"chain,omitempty"`
	// PasswordEnv names the environment variable holding the key's password.
	PasswordEnv string `json:"passwordEnv,omitempty"`
	// Roots are the trust roots (PEM files) baked into the system's image for Rugix Ctrl to
	// verify the next bundle against. Empty means the last certificate of cert+chain when it
	// is self-signed (the signer's chain is self-contained).
	Roots []string `json:"roots,omitempty"`
	// InsecureUnsigned lets build-release build a system whose devices cannot verify their
	// next update (neither signing nor use_bundle_hash); every build warns.
	InsecureUnsigned bool `json:"insecureUnsigned,omitempty"`
}

// Yocto locates a Yocto build's deploy directory.
type Yocto struct {
	Machine string `json:"machine,omitempty"`
	Image   string `json:"image,omitempty"`
	// DeployDir defaults to build/tmp/deploy/images/<machine>, relative to the project.
	DeployDir string `json:"deployDir,omitempty"`
	// ImageID is the IMAGE_ID the system's devices report (os-release). Assets are named
	// after the deployed os-release's IMAGE_ID anyway, as meta-nexigon's scripts name them;
	// set, it is a check: upload-release refuses a build whose IMAGE_ID is another.
	ImageID string `json:"imageId,omitempty"`
}

// Rauc holds the RAUC settings of a system whose engine is EngineRauc.
type Rauc struct {
	// Compatible is the bundle's [update] compatible and the device's /etc/rauc/system.conf
	// [system] compatible, which RAUC requires to be equal. Default: the system name.
	Compatible string `json:"compatible,omitempty"`
}

// Grub holds efi-grub options.
type Grub struct {
	// EFIBinary is an optional prebuilt GRUB EFI binary used instead of grub-mkimage.
	EFIBinary string `json:"efiBinary,omitempty"`
	// PreferMkimage builds GRUB with grub-mkimage when its modules are installed and falls
	// back to EFIBinary only when they are not, so a demo builds everywhere and boots where
	// it can.
	PreferMkimage bool `json:"preferMkimage,omitempty"`
}

// Bakery is what rugix-bakery.toml says about a system, verbatim, for the bakery backend.
type Bakery struct {
	Layer        string `json:"layer,omitempty"`
	Architecture string `json:"architecture,omitempty"`
	Target       string `json:"target,omitempty"`
}

// Setting is one resolved configuration value and where it came from.
type Setting struct {
	Key string `json:"key"`
	// Value is the effective value; secrets are a redacting Secret.
	Value any `json:"value"`
	// Source is "flag --x", "environment NAME", ".env:3", "otabake.toml:12",
	// ".nexigon-cli.toml:1", "rugix-bakery.toml:5" or "default".
	Source string `json:"source"`
}

// System returns the system called name. The error lists the systems that exist.
func (c *Config) System(name string) (*System, error) {
	for _, s := range c.Systems {
		if s.Name == name {
			return s, nil
		}
	}
	if len(c.Systems) == 0 {
		return nil, fmt.Errorf("unknown system %q: the project defines no systems (add [systems.%s] to %s)", name, name, FileName)
	}
	names := make([]string, len(c.Systems))
	for i, s := range c.Systems {
		names[i] = s.Name
	}
	sort.Strings(names)
	return nil, fmt.Errorf("unknown system %q: known systems are %s", name, strings.Join(names, ", "))
}

// Settings returns every resolved hub and release setting with its source, in a fixed order.
// Secret values are Secret, which never prints its value.
func (c *Config) Settings() []Setting {
	if c.state == nil {
		return nil
	}
	return append([]Setting(nil), c.state.settings...)
}

// Path resolves p relative to the project directory; absolute paths and "" are returned as is.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}
