// Package bake writes a release's identity and OTA defaults into a root filesystem before it
// becomes a system partition: /etc/rugix/system-build-info.json exactly as Rugix Bakery writes
// it, IMAGE_ID and IMAGE_VERSION in os-release for Yocto-style consumers, the agent's defaults
// in /etc/otabake/ota.json, optionally an explicit /etc/rugix/system.toml, and the trust roots
// Rugix Ctrl verifies update bundles against (/etc/rugix/ctrl.toml and root files, trust.go).
//
// Bake works on a staging directory as an ordinary user, resolves and reads every path through
// rootfs.Root, as if the rootfs were "/" (so etc/os-release -> /usr/lib/os-release stays
// inside, and a FIFO or device os-release is refused), writes atomically, and
// rewrites nothing whose bytes are already right, so a second run changes neither contents
// nor modification times.
package bake

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/image"
	"github.com/otabake/otabake/internal/rootfs"
)

// Paths inside the rootfs that Bake writes.
const (
	BuildInfoPath = "etc/rugix/system-build-info.json"
	OTADefaults   = "etc/otabake/ota.json"
	// AgentSettings is otabake-agent's own configuration (agent.SettingsFile), where Bake sets
	// the engine.
	AgentSettings = "etc/otabake/agent.toml"
	SystemTOML    = "etc/rugix/system.toml"
	// RaucSystemConf is RAUC's system configuration (rauc docs/reference.rst).
	RaucSystemConf = "etc/rauc/system.conf"
	OSRelease      = "etc/os-release"
	usrOSRelease   = "usr/lib/os-release"
)

// Options is the release identity and the defaults to bake.
type Options struct {
	// System is the system name (Bakery's system name, "name" in the build info).
	System string
	// Version is the release version ("release.version").
	Version string
	// ReleaseID defaults to "<System>@<Version>", as Bakery does.
	ReleaseID string
	// OTAPath, when set, is the agent's update path "<repository>/<package>/<tag>" and makes
	// Bake write OTADefaults.
	OTAPath string
	// UseBundleHash tells the agent to pin the bundle hash when installing. It is part of
	// ota.json and so has no effect without OTAPath.
	UseBundleHash bool
	// TrustRoots, when set, makes Bake write the trust roots Rugix Ctrl verifies bundle
	// signatures against: RootPath(i) for each, RootsBundle with all of them, and CtrlConfig
	// listing them (see trust.go for the upstream locations). With Engine "rauc" they are
	// RAUC's keyring instead, RaucKeyring, and no Rugix Ctrl file is written.
	TrustRoots []*x509.Certificate
	// Engine, when set ("rugix" or "rauc", otabake-agent's engine names), makes Bake set
	// engine in AgentSettings, keeping the file's other lines, as the otabake-ota Bakery recipe
	// does (recipes/otabake-ota/steps/00-install.sh). Unset, the agent takes whichever of
	// rugix-ctrl and rauc is on PATH, Rugix Ctrl first.
	Engine string
	// RaucCompatible, with Engine "rauc" and Target efi-grub, makes Bake write RaucSystemConf
	// for the RAUC layout (image.RaucSystemConf) instead of SystemTOML.
	RaucCompatible string
	// Target, when set, makes Bake write SystemTOML with Rugix Ctrl's defaults for the target
	// (efi-grub, rpi-tryboot, rpi-uboot; generic-grub-efi is accepted as Bakery's alias).
	Target string
}

// BuildInfo is the content of system-build-info.json, in Bakery's field order.
type BuildInfo struct {
	Name    string       `json:"name"`
	Release ReleaseField `json:"release"`
}

// ReleaseField is the "release" object of BuildInfo.
type ReleaseField struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// File reports one file Bake is responsible for.
type File struct {
	// Path is the path inside the rootfs that was asked for (e.g. "etc/os-release").
	Path string `json:"path"`
	// Resolved is the path inside the rootfs after following symlinks.
	Resolved string `json:"resolved"`
	// Changed is false when the file already had the right bytes and was left untouched.
	Changed bool `json:"changed"`
}

// Result describes what Bake did.
type Result struct {
	BuildInfo BuildInfo `json:"buildInfo"`
	// BuildInfoJSON is the exact content of system-build-info.json, which build-release also
	// writes next to the image.
	BuildInfoJSON []byte `json:"-"`
	Files         []File `json:"files"`
}

// Validate checks the options without touching any file.
func (o Options) Validate() error {
	if o.System == "" {
		return errors.New("bake: system name is empty")
	}
	if o.Version == "" {
		return errors.New("bake: version is empty")
	}
	for _, f := range []struct{ name, v string }{{"system name", o.System}, {"version", o.Version}, {"release id", o.ReleaseID}} {
		for _, r := range f.v {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("bake: %s %q contains a control character", f.name, f.v)
			}
		}
	}
	if o.OTAPath != "" {
		p, err := hub.ParseVersionPath(o.OTAPath)
		if err != nil {
			return fmt.Errorf("bake: --ota-path: %w", err)
		}
		for _, c := range []struct{ what, s string }{{"repository", p.Repository}, {"package", p.Package}, {"tag", p.Tag}} {
			if err := hub.ValidName(c.what, c.s, 128); err != nil {
				return fmt.Errorf("bake: --ota-path %q: %w", o.OTAPath, err)
			}
		}
	}
	if o.Engine != "" && o.Engine != "rugix" && o.Engine != "rauc" {
		return fmt.Errorf("bake: engine %q: want rugix or rauc", o.Engine)
	}
	if o.RaucCompatible != "" {
		if o.Engine != "rauc" || (o.Target != "efi-grub" && o.Target != "generic-grub-efi") {
			return fmt.Errorf("bake: a RAUC compatible needs engine rauc and target efi-grub, not %q and %q", o.Engine, o.Target)
		}
		if _, err := image.RaucSystemConf(o.RaucCompatible, "/"+RaucKeyring); err != nil {
			return fmt.Errorf("bake: %w", err)
		}
	}
	if o.Target != "" {
		if _, err := SystemConfig(o.Target); err != nil {
			return err
		}
	}
	return checkRoots(o.TrustRoots)
}

// MarshalBuildInfo renders info exactly as Bakery's serde_json::to_string_pretty does:
// 2-space indent, fixed key order, no trailing newline.
func MarshalBuildInfo(info BuildInfo) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(info); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Bake writes the release identity and defaults into the rootfs at rootfsDir.
func Bake(ctx context.Context, rootfsDir string, opts Options) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	fi, err := os.Stat(rootfsDir)
	if err != nil {
		return nil, fmt.Errorf("bake: rootfs: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("bake: rootfs %s is not a directory", rootfsDir)
	}
	id := ReleaseID(opts.System, opts.Version, opts.ReleaseID)
	res := &Result{BuildInfo: BuildInfo{Name: opts.System, Release: ReleaseField{ID: id, Version: opts.Version}}}
	res.BuildInfoJSON, err = MarshalBuildInfo(res.BuildInfo)
	if err != nil {
		return nil, fmt.Errorf("bake: encode build info: %w", err)
	}
	root, err := rootfs.OpenRoot(rootfsDir)
	if err != nil {
		return nil, fmt.Errorf("bake: rootfs: %w", err)
	}
	defer root.Close()
	b := baker{root: root, res: res}
	if err := b.put(ctx, BuildInfoPath, func([]byte) ([]byte, error) { return res.BuildInfoJSON, nil }); err != nil {
		return nil, err
	}
	if err := b.osRelease(ctx, opts.System, opts.Version); err != nil {
		return nil, err
	}
	if opts.OTAPath != "" {
		data, err := marshalOTADefaults(opts.OTAPath, opts.UseBundleHash)
		if err != nil {
			return nil, fmt.Errorf("bake: encode %s: %w", OTADefaults, err)
		}
		if err := b.put(ctx, OTADefaults, func([]byte) ([]byte, error) { return data, nil }); err != nil {
			return nil, err
		}
	}
	if opts.Engine != "" {
		if err := b.put(ctx, AgentSettings, func(old []byte) ([]byte, error) { return agentSettings(old, opts.Engine), nil }); err != nil {
			return nil, err
		}
	}
	if len(opts.TrustRoots) > 0 && opts.Engine == "rauc" {
		var all []byte
		for _, c := range opts.TrustRoots {
			all = append(all, rootPEM(c)...)
		}
		if err := b.put(ctx, RaucKeyring, func([]byte) ([]byte, error) { return all, nil }); err != nil {
			return nil, err
		}
	} else if len(opts.TrustRoots) > 0 {
		var all []byte
		paths := make([]string, len(opts.TrustRoots))
		for i, c := range opts.TrustRoots {
			paths[i] = RootPath(i)
			data := rootPEM(c)
			all = append(all, data...)
			if err := b.put(ctx, paths[i], func([]byte) ([]byte, error) { return data, nil }); err != nil {
				return nil, err
			}
		}
		if err := b.put(ctx, RootsBundle, func([]byte) ([]byte, error) { return all, nil }); err != nil {
			return nil, err
		}
		if err := b.put(ctx, CtrlConfig, func(old []byte) ([]byte, error) { return ctrlConfig(old, paths) }); err != nil {
			return nil, err
		}
	}
	if opts.RaucCompatible != "" {
		data, _ := image.RaucSystemConf(opts.RaucCompatible, "/"+RaucKeyring)
		if err := b.put(ctx, RaucSystemConf, func([]byte) ([]byte, error) { return []byte(data), nil }); err != nil {
			return nil, err
		}
	} else if opts.Target != "" {
		data, _ := SystemConfig(opts.Target)
		if err := b.put(ctx, SystemTOML, func([]byte) ([]byte, error) { return data, nil }); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// otaDefaults is the image-level configuration of otabake-agent (agent.DefaultsFile).
type otaDefaults struct {
	Path  string `json:"path"`
	Rugix struct {
		UseBundleHash bool `json:"useBundleHash"`
	} `json:"rugix"`
}

func marshalOTADefaults(path string, useHash bool) ([]byte, error) {
	var d otaDefaults
	d.Path = path
	d.Rugix.UseBundleHash = useHash
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// engineLineRE is a top-level engine key of agent.toml, the line the recipe replaces.
var engineLineRE = regexp.MustCompile(`^[ \t]*engine[ \t]*=`)

// agentSettings is agent.toml with engine set: the engine line first (top-level keys go before
// any table), then the old file's lines except its engine lines.
func agentSettings(old []byte, engine string) []byte {
	out := []byte(fmt.Sprintf("engine = %q\n", engine))
	if len(old) == 0 {
		return out
	}
	for _, line := range bytes.SplitAfter(old, []byte("\n")) {
		if len(line) == 0 || engineLineRE.Match(line) {
			continue
		}
		out = append(out, line...)
		if line[len(line)-1] != '\n' {
			out = append(out, '\n')
		}
	}
	return out
}

// maxFileSize bounds the files Bake reads before rewriting them (os-release, the build info,
// ota.json, system.toml), which are small by nature: a 24 GB os-release is refused, not read.
const maxFileSize = 1 << 20

type baker struct {
	root *rootfs.Root
	res  *Result
}

// put resolves name inside the rootfs and replaces its content with edit(old), where old is
// nil when the file does not exist. Equal content is left alone so that re-runs keep mtimes.
// Missing directories on the way are created, but not at the target of a dangling link; what
// exists is read under the rootfs rules (internal/rootfs/read.go): a FIFO, a device or a file
// over maxFileSize is an error.
func (b *baker) put(ctx context.Context, name string, edit func(old []byte) ([]byte, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := b.root.MkdirAll(path.Dir(name), 0o755)
	if err != nil {
		return fmt.Errorf("bake: %s: %w", name, err)
	}
	want := path.Join(dir, path.Base(name))
	rel, err := b.root.Resolve(want)
	if err != nil {
		return fmt.Errorf("bake: %w", err)
	}
	perm := fs.FileMode(0o644)
	old, err := b.root.ReadFile(want, maxFileSize)
	switch {
	case err == nil:
		fi, err := b.root.Stat(rel)
		if err != nil {
			return fmt.Errorf("bake: %w", err)
		}
		perm = fi.Mode().Perm()
	case errors.Is(err, fs.ErrNotExist):
		old = nil
	default:
		return fmt.Errorf("bake: %w", err)
	}
	data, err := edit(old)
	if err != nil {
		return fmt.Errorf("bake: %s: %w", rel, err)
	}
	f := File{Path: name, Resolved: rel}
	if old == nil || !bytes.Equal(old, data) {
		// rel was resolved inside the rootfs and its directory exists as a directory.
		if err := atomicfile.WriteFile(filepath.Join(b.root.Dir(), filepath.FromSlash(rel)), data, perm); err != nil {
			return fmt.Errorf("bake: write %s: %w", rel, err)
		}
		f.Changed = true
	}
	b.res.Files = append(b.res.Files, f)
	return nil
}

// osRelease updates etc/os-release, or usr/lib/os-release when only that exists (os-release(5)
// reads it as the fallback), or creates etc/os-release when neither exists.
func (b *baker) osRelease(ctx context.Context, name, version string) error {
	target := OSRelease
	if _, err := b.root.Stat(OSRelease); errors.Is(err, fs.ErrNotExist) {
		if _, err := b.root.Stat(usrOSRelease); err == nil {
			target = usrOSRelease
		}
	}
	return b.put(ctx, target, func(old []byte) ([]byte, error) {
		return SetOSRelease(old, map[string]string{"IMAGE_ID": name, "IMAGE_VERSION": version}), nil
	})
}

// ReleaseID is a release's id as Rugix Bakery writes it into system-build-info.json: id when
// one is given, else <system>@<version>. The one place the default is made.
func ReleaseID(system, version, id string) string {
	if id != "" {
		return id
	}
	return system + "@" + version
}
