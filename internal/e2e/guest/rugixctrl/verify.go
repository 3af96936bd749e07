//go:build linux

package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/bundle/stlv"
	"github.com/otabake/otabake/internal/sign"
)

// ctrlConfigPath is Rugix Ctrl 1.x's configuration file (rugix/rugix
// crates/apps/rugix-ctrl/src/config.rs, CTRL_CONFIG_PATH); RUGIX_STANDIN_CTRL_CONFIG replaces
// it in host tests.
const (
	ctrlConfigPath = "/etc/rugix/ctrl.toml"
	envCtrlConfig  = "RUGIX_STANDIN_CTRL_CONFIG"
)

// The messages Rugix Ctrl 1.x gives, word for word.
const (
	// rugix/rugix crates/apps/rugix-ctrl/src/operations/install/mod.rs, start_verified_bundle.
	msgVerificationFailed = "bundle verification failed, refusing to install update"
	// rugix/rugix crates/libs/rugix-bundle/src/reader.rs, BundleReader::start.
	msgInvalidHeaderHash = "invalid header hash"
	// rugix/rugix crates/apps/rugix-ctrl/src/operations/install/system.rs, install_payloads
	// (Rugix Ctrl 1.2.0, CHANGELOG.md "Bundle installation now rejects bundles without a block
	// index by default").
	msgNoBlockIndex = "payload %d does not have a block index, refusing to install"
	// rugix/rugix crates/apps/rugix-ctrl/src/operations/install/mod.rs, InstallBundle::execute.
	msgNeedsCommit = "system needs to be committed before installing an update"
)

// ctrlConfig is the part of /etc/rugix/ctrl.toml the stand-in reads: `[signatures] roots`, the
// paths of the root certificates a bundle signature must chain to (rugix/rugix
// crates/apps/rugix-ctrl/schemas/config.sidex, record SignaturesConfig; kebab-case keys).
type ctrlConfig struct {
	Signatures *struct {
		Roots []string `toml:"roots"`
	} `toml:"signatures"`
	Compatibility *struct {
		RequireBundleComponents *bool `toml:"require-bundle-components"`
	} `toml:"compatibility"`
}

// loadCtrlConfig reads the configuration file; a missing file is the default configuration
// (no roots), as load_ctrl_config in rugix/rugix crates/apps/rugix-ctrl/src/config.rs. Rugix
// Ctrl loads it before running any command, so a malformed file fails every command.
func loadCtrlConfig(path string) (*ctrlConfig, error) {
	var c ctrlConfig
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("unable to read configuration file %s: %w", path, err)
	}
	if _, err := toml.Decode(string(data), &c); err != nil {
		return nil, fmt.Errorf("unable to parse configuration file %s: %w", path, err)
	}
	// `roots` is the one required field of SignaturesConfig (config.sidex).
	if c.Signatures != nil && c.Signatures.Roots == nil {
		return nil, fmt.Errorf("unable to parse configuration file %s: missing field `roots` in [signatures]", path)
	}
	return &c, nil
}

// signatureRoots are the root certificates signatures are checked against: --root-cert
// overrides the configured roots (configured_signature_roots in rugix/rugix
// crates/apps/rugix-ctrl/src/operations/install/mod.rs).
func (c *ctrlConfig) signatureRoots(explicit string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	if c.Signatures == nil {
		return nil
	}
	return c.Signatures.Roots
}

// verifySignature reports whether one of the bundle's CMS signatures verifies against one of
// the roots and signs this bundle's header, as verify_bundle_signature in rugix/rugix
// crates/apps/rugix-ctrl/src/operations/install/mod.rs: no roots or no signatures is "not
// verified"; an unreadable root is logged and skipped; every signature is tried with every root.
func verifySignature(b *bundle.Bundle, roots []string, now time.Time, logf func(string, ...any)) bool {
	if len(roots) == 0 {
		return false
	}
	sigs := b.Signatures()
	if len(sigs) == 0 {
		logf("WARN root certificates configured but no signatures found (root_count=%d)", len(roots))
		return false
	}
	type verifier struct {
		index int
		pool  *x509.CertPool
	}
	var verifiers []verifier
	rootErrors := 0
	for i, path := range roots {
		pool, err := sign.LoadCertPool(path)
		if err != nil {
			rootErrors++
			logf("WARN unable to load signature root %d (%s): %v", i, path, err)
			continue
		}
		verifiers = append(verifiers, verifier{i, pool})
	}
	logf("checking bundle signatures (signature_count=%d, root_count=%d)", len(sigs), len(verifiers))
	verificationErrors := 0
	for si, der := range sigs {
		for _, v := range verifiers {
			res, err := sign.VerifyCMS(der, v.pool, now)
			if err != nil {
				verificationErrors++
				logf("signature %d did not verify against root %d: %v", si, v.index, err)
				continue
			}
			var md bundle.SignedMetadata
			if err := stlv.Unmarshal(res.Content, bundle.TagSignedMetadata, &md); err != nil {
				verificationErrors++
				logf("signature %d: signed metadata is invalid: %v", si, err)
				continue
			}
			d, err := bundle.ParseDigest(md.HeaderHash)
			if err != nil {
				verificationErrors++
				logf("signature %d: signed metadata is invalid: %v", si, err)
				continue
			}
			if bytes.Equal(d.Algorithm.Sum(b.HeaderBytes()), d.Sum) {
				logf("found valid signature (signature %d, root %d)", si, v.index)
				return true
			}
			logf("signature %d signs another bundle (%s)", si, d)
		}
	}
	logf("WARN no configured signature root accepted a bundle signature (root_errors=%d, verification_errors=%d)", rootErrors, verificationErrors)
	return false
}

// verifyBundle is start_verified_bundle of rugix/rugix
// crates/apps/rugix-ctrl/src/operations/install/mod.rs (Rugix Ctrl 1.0: "Make signatures
// mandatory unless opted out", CHANGELOG.md): a --bundle-hash that matches the header verifies
// the bundle (a mismatch is an error of the reader itself, crates/libs/rugix-bundle/src/reader.rs);
// otherwise a signature must chain to a root; otherwise only
// --insecure-skip-bundle-verification lets the installation go on.
func verifyBundle(b *bundle.Bundle, o installOptions, cfg *ctrlConfig, logf func(string, ...any)) error {
	if o.BundleHash != "" {
		return checkBundleHash(b, o.BundleHash)
	}
	if verifySignature(b, cfg.signatureRoots(o.RootCert), time.Now(), logf) {
		return nil
	}
	if o.SkipVerification {
		logf("WARN installing an unverified bundle (--insecure-skip-bundle-verification)")
		return nil
	}
	return errors.New(msgVerificationFailed)
}

// checkBlockIndex refuses a payload without a block index unless
// --insecure-allow-missing-block-index (rugix/rugix
// crates/apps/rugix-ctrl/src/operations/install/system.rs, install_payloads; Rugix Ctrl 1.2.0).
// Rugix Ctrl checks each payload when it reaches it, after the payloads before it were written.
func checkBlockIndex(p *bundle.PayloadInfo, o installOptions) error {
	if o.AllowMissingBlockIndex || p.Header.BlockEncoding != nil {
		return nil
	}
	return fmt.Errorf(msgNoBlockIndex, p.Index)
}
