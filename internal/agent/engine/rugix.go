package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/BurntSushi/toml"
)

// Rugix drives rugix-ctrl (0.8.x and 1.x).
type Rugix struct {
	run   Runner
	major int // cached rugix-ctrl major version, -1 when unknown
	known bool
	// ctrlConfig is Rugix Ctrl's configuration file; empty means RugixCtrlConfig.
	ctrlConfig string
}

// RugixCtrlConfig is where Rugix Ctrl 1.x reads its configuration, including the roots it
// verifies bundle signatures against (rugix/rugix crates/apps/rugix-ctrl/src/config.rs
// CTRL_CONFIG_PATH; schemas/config.sidex SignaturesConfig.roots). otabake bake writes it with
// the system's trust roots (internal/bake/trust.go).
const RugixCtrlConfig = "/etc/rugix/ctrl.toml"

// rugixRootsBundle holds every root in one file, for 0.8.x's single --root-cert (an OpenSSL
// -CAfile). otabake bake writes it next to ctrl.toml.
const rugixRootsBundle = "roots.pem"

// configPath is Rugix Ctrl's configuration file: ctrlConfig, or RugixCtrlConfig.
func (r *Rugix) configPath() string {
	if r.ctrlConfig == "" {
		return RugixCtrlConfig
	}
	return r.ctrlConfig
}

// signatureRoots returns the roots listed in ctrl.toml's [signatures] roots; none when the
// file does not exist.
func (r *Rugix) signatureRoots() ([]string, error) {
	path := r.configPath()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var cfg struct {
		Signatures struct {
			Roots []string `toml:"roots"`
		} `toml:"signatures"`
	}
	if _, err := toml.Decode(string(data), &cfg); err != nil {
		return nil, fmt.Errorf("%s is not valid TOML, and rugix-ctrl reads it too: fix it (%v)", path, err)
	}
	for _, root := range cfg.Signatures.Roots {
		if !filepath.IsAbs(root) {
			return nil, fmt.Errorf("%s: signatures.roots entry %q is not an absolute path", path, root)
		}
	}
	return cfg.Signatures.Roots, nil
}

// Name implements Engine.
func (r *Rugix) Name() string { return "rugix" }

// BundleSuffix implements Engine.
func (r *Rugix) BundleSuffix() string { return ".rugixb" }

// RugixSystemInfo is the part of `rugix-ctrl system info` the agent reads (spec §6.2).
type RugixSystemInfo struct {
	Slots map[string]RugixSlot `json:"slots"`
	Boot  *struct {
		BootFlow     string              `json:"bootFlow"`
		ActiveGroup  *string             `json:"activeGroup"`
		DefaultGroup *string             `json:"defaultGroup"`
		Groups       map[string]struct{} `json:"groups"`
	} `json:"boot"`
}

// RugixSlot is one slot of the system info.
type RugixSlot struct {
	Active    bool   `json:"active"`
	UpdatedAt string `json:"updatedAt,omitempty"`
}

// ParseRugixSystemInfo parses the JSON printed by `rugix-ctrl system info` into a BootState.
// With two boot groups the spare is the other one; Rugix Ctrl refuses to guess with more.
func ParseRugixSystemInfo(data []byte) (BootState, error) {
	var info RugixSystemInfo
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&info); err != nil {
		return BootState{}, fmt.Errorf("parse rugix-ctrl system info: %w", err)
	}
	if info.Boot == nil {
		return BootState{}, fmt.Errorf("parse rugix-ctrl system info: no boot section (is Rugix Ctrl managing this system?)")
	}
	if info.Boot.ActiveGroup == nil || *info.Boot.ActiveGroup == "" {
		return BootState{}, fmt.Errorf("parse rugix-ctrl system info: boot.activeGroup missing")
	}
	if info.Boot.DefaultGroup == nil || *info.Boot.DefaultGroup == "" {
		return BootState{}, fmt.Errorf("parse rugix-ctrl system info: boot.defaultGroup missing")
	}
	st := BootState{
		ActiveGroup:  *info.Boot.ActiveGroup,
		DefaultGroup: *info.Boot.DefaultGroup,
		NeedsCommit:  *info.Boot.ActiveGroup != *info.Boot.DefaultGroup,
	}
	if len(info.Boot.Groups) == 2 {
		for g := range info.Boot.Groups {
			if g != st.ActiveGroup {
				st.SpareGroup = g
			}
		}
	} else if len(info.Boot.Groups) == 0 {
		switch st.ActiveGroup {
		case "a":
			st.SpareGroup = "b"
		case "b":
			st.SpareGroup = "a"
		}
	}
	if st.SpareGroup != "" {
		if s, ok := info.Slots["system-"+st.SpareGroup]; ok && s.UpdatedAt != "" {
			if t, err := time.Parse(time.RFC3339Nano, s.UpdatedAt); err == nil {
				st.SpareUpdatedAt = t
			}
		}
	}
	return st, nil
}

// BootState implements Engine.
func (r *Rugix) BootState(ctx context.Context) (BootState, error) {
	out, err := r.run(ctx, "rugix-ctrl", "system", "info", "--json")
	if err != nil {
		return BootState{}, fmt.Errorf("rugix-ctrl system info failed: %w", err)
	}
	return ParseRugixSystemInfo(out)
}

// Commit implements Engine.
func (r *Rugix) Commit(ctx context.Context) error {
	if _, err := r.run(ctx, "rugix-ctrl", "system", "commit"); err != nil {
		return fmt.Errorf("rugix-ctrl system commit failed: %w", err)
	}
	return nil
}

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)(?:\.(\d+))?`)

// ParseRugixVersion returns the major version in `rugix-ctrl --version` output.
func ParseRugixVersion(out []byte) (major int, err error) {
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("rugix-ctrl --version: no version number in %q", bytes.TrimSpace(out))
	}
	return strconv.Atoi(string(m[1]))
}

func (r *Rugix) majorVersion(ctx context.Context) (int, error) {
	if r.known {
		return r.major, nil
	}
	out, err := r.run(ctx, "rugix-ctrl", "--version")
	if err != nil {
		return 0, fmt.Errorf("rugix-ctrl --version failed: %w", err)
	}
	m, err := ParseRugixVersion(out)
	if err != nil {
		return 0, err
	}
	r.major, r.known = m, true
	return m, nil
}

// installArgs is `update install [verification options] --reboot no -- URL`: every option
// before "--", the URL after it, so that no value from the Hub can be read as an option (clap,
// which parses rugix-ctrl's command line, takes everything after "--" as positional).
//
// The verification options depend on the installed Rugix Ctrl, whose version is read once:
//   - 0.8.x verifies nothing unless asked (silitics/rugix v0.8.15
//     www/docs/ctrl/signed-updates.md, crates/apps/rugix-ctrl/src/cli.rs): with trust roots in
//     ctrl.toml, `--verify-signature --root-cert ROOT` (it takes exactly one --root-cert, an
//     OpenSSL -CAfile, so several roots go as the roots.pem bundle); with a pinned hash,
//     `--verify-bundle HASH`.
//   - 1.x verifies every bundle against the roots in ctrl.toml by itself and refuses an
//     unverifiable one (rugix/rugix CHANGELOG 1.0.0; src/operations/install/mod.rs
//     start_verified_bundle), so signatures need nothing extra; a pinned hash is
//     `--bundle-hash HASH` (src/cli.rs UpdateCommand::Install bundle_hash; --verify-bundle
//     is the 0.8.x name and 1.x does not accept it). --root-cert is not passed: on 1.x it
//     would replace the configured roots instead of adding to them.
func (r *Rugix) installArgs(ctx context.Context, url string, opts InstallOptions) ([]string, error) {
	args := []string{"update", "install"}
	if opts.BundleHash != "" {
		if err := CheckBundleHash(opts.BundleHash); err != nil {
			return nil, err
		}
	}
	roots, err := r.signatureRoots()
	if err != nil {
		return nil, err
	}
	if opts.BundleHash == "" && len(roots) == 0 {
		return append(args, "--reboot", "no", "--", url), nil
	}
	major, err := r.majorVersion(ctx)
	if err != nil {
		return nil, err
	}
	if major < 1 {
		switch {
		case len(roots) == 1:
			args = append(args, "--verify-signature", "--root-cert", roots[0])
		case len(roots) > 1:
			bundle := filepath.Join(filepath.Dir(r.configPath()), rugixRootsBundle)
			if _, err := os.Stat(bundle); err != nil {
				return nil, fmt.Errorf("rugix-ctrl 0.8 takes one --root-cert, ctrl.toml lists %d roots and %s is missing: rebuild the image with otabake (it writes the bundle) or list one root", len(roots), bundle)
			}
			args = append(args, "--verify-signature", "--root-cert", bundle)
		}
		if opts.BundleHash != "" {
			args = append(args, "--verify-bundle", opts.BundleHash)
		}
	} else if opts.BundleHash != "" {
		args = append(args, "--bundle-hash", opts.BundleHash)
	}
	return append(args, "--reboot", "no", "--", url), nil
}

// Install implements Engine. It refuses a URL that is not http(s) and a malformed hash before
// running anything; the agent applies the stricter https-only policy before calling it.
func (r *Rugix) Install(ctx context.Context, url string, opts InstallOptions) error {
	if err := CheckBundleURL(url, SourcePolicy{AllowHTTP: true}); err != nil {
		return fmt.Errorf("rugix-ctrl update install refused: %w", err)
	}
	args, err := r.installArgs(ctx, url, opts)
	if err != nil {
		return err
	}
	if _, err := r.run(ctx, "rugix-ctrl", args...); err != nil {
		return fmt.Errorf("rugix-ctrl update install failed: %w", err)
	}
	return nil
}

// DescribeInstall implements Engine.
func (r *Rugix) DescribeInstall(ctx context.Context, url string, opts InstallOptions) ([]string, error) {
	args, err := r.installArgs(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	return append([]string{"rugix-ctrl"}, args...), nil
}

// RebootSpare implements Engine.
func (r *Rugix) RebootSpare(ctx context.Context) error {
	if _, err := r.run(ctx, "rugix-ctrl", "system", "reboot", "--spare"); err != nil {
		return fmt.Errorf("rugix-ctrl system reboot --spare failed: %w", err)
	}
	return nil
}

// RebootDefault implements Engine.
func (r *Rugix) RebootDefault(ctx context.Context) error {
	if _, err := r.run(ctx, "rugix-ctrl", "system", "reboot"); err != nil {
		return fmt.Errorf("rugix-ctrl system reboot failed: %w", err)
	}
	return nil
}
