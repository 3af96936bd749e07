package bake

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strconv"

	"github.com/BurntSushi/toml"
)

// Where Rugix Ctrl finds the roots it verifies update bundle signatures against.
//
// Rugix Ctrl 1.x reads /etc/rugix/ctrl.toml (rugix/rugix crates/apps/rugix-ctrl/src/config.rs:
// CTRL_CONFIG_PATH = "/etc/rugix/ctrl.toml"), whose `[signatures] roots` is a list of paths
// to root certificates (schemas/config.sidex: record SignaturesConfig { roots: [string] }).
// Installing, it tries every signature against every configured root and refuses the bundle
// unless one verifies or --bundle-hash was given (src/operations/install/mod.rs:
// start_verified_bundle, configured_signature_roots, verify_bundle_signature; CHANGELOG 1.0.0
// "Make signatures mandatory unless opted out"). Each root file is read whole and parsed as one
// PEM certificate (rugix_pki::CmsVerifier::new), so every root gets a file of its own. Rugix's
// docs (Signed Updates Reference, "Configuring Signature Verification on Devices") show
// exactly `[signatures] roots = ["/etc/rugix/root.crt"]`; the first root goes there.
//
// Rugix Ctrl 0.8.x has no configuration file: the installer passes
// `--verify-signature --root-cert PATH` (silitics/rugix v0.8.15 www/docs/ctrl/signed-updates.md;
// crates/apps/rugix-ctrl/src/cli.rs), which it hands to `openssl cms -verify -CAfile PATH`,
// and it refuses more than one --root-cert. RootsBundle holds all roots in one file for that.
const (
	CtrlConfig  = "etc/rugix/ctrl.toml"
	RootsBundle = "etc/rugix/roots.pem"
)

// RaucKeyring is the keyring RAUC verifies bundle signatures against: a PEM file of one or more
// CA certificates, named by system.conf's [keyring] path (rauc docs/reference.rst, "[keyring]
// section", whose example is path=/etc/rauc/keyring.pem).
const RaucKeyring = "etc/rauc/keyring.pem"

// RootPath is the image path of the i-th (0-based) trust root: etc/rugix/root.crt, then
// etc/rugix/root-2.crt, root-3.crt, ….
func RootPath(i int) string {
	if i == 0 {
		return "etc/rugix/root.crt"
	}
	return "etc/rugix/root-" + strconv.Itoa(i+1) + ".crt"
}

const ctrlConfigHeader = `# Rugix Ctrl configuration, written by otabake bake: the roots Rugix Ctrl 1.x verifies the
# signatures of update bundles against (/etc/rugix/ctrl.toml, [signatures] roots).
# Rugix Ctrl 0.8.x ignores this file; otabake-agent passes --verify-signature --root-cert.
`

// ctrlConfig returns the new content of /etc/rugix/ctrl.toml: old (nil when there is none)
// with signatures.roots set and every other key kept. With nothing but the roots in it, the
// file is otabake's own short form; a second run gives the same bytes either way.
func ctrlConfig(old []byte, roots []string) ([]byte, error) {
	cfg := map[string]any{}
	if old != nil {
		if _, err := toml.Decode(string(old), &cfg); err != nil {
			return nil, fmt.Errorf("the rootfs has a %s that is not valid TOML (%v); fix or remove it, otabake adds the trust roots to it", CtrlConfig, err)
		}
	}
	sig, _ := cfg["signatures"].(map[string]any)
	if cfg["signatures"] != nil && sig == nil {
		return nil, fmt.Errorf("the rootfs's %s has a signatures key that is not a table; fix or remove it", CtrlConfig)
	}
	if sig == nil {
		sig = map[string]any{}
	}
	abs := make([]string, len(roots))
	for i, r := range roots {
		abs[i] = "/" + r
	}
	sig["roots"] = abs
	cfg["signatures"] = sig
	var b bytes.Buffer
	b.WriteString(ctrlConfigHeader)
	if len(cfg) == 1 && len(sig) == 1 {
		b.WriteString("[signatures]\nroots = [")
		for i, r := range abs {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(r))
		}
		b.WriteString("]\n")
		return b.Bytes(), nil
	}
	b.WriteString("# Merged into the rootfs's own ctrl.toml; its comments were not kept.\n")
	if err := toml.NewEncoder(&b).Encode(cfg); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// rootPEM is one certificate as a bare PEM block: Rugix Ctrl 1.x parses the root file as
// exactly one certificate, so nothing else (no comment, no chain) goes in.
func rootPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// checkRoots refuses roots that cannot serve as one: a device would only say "unable to
// create CMS verifier" or "signature did not verify".
func checkRoots(roots []*x509.Certificate) error {
	seen := map[string]bool{}
	for i, c := range roots {
		if c == nil || len(c.Raw) == 0 {
			return fmt.Errorf("bake: trust root %d is empty", i+1)
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return fmt.Errorf("bake: trust root %q is not a CA certificate (basicConstraints CA:TRUE); give the CA that issued the signer, e.g. keys/dev-ca.crt from otabake keys init", c.Subject.String())
		}
		if seen[string(c.Raw)] {
			return fmt.Errorf("bake: trust root %q is given twice", c.Subject.String())
		}
		seen[string(c.Raw)] = true
	}
	return nil
}
