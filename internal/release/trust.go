package release

import (
	"crypto/x509"
	"fmt"

	"github.com/otabake/otabake/internal/project"
	"github.com/otabake/otabake/internal/sign"
)

// trustPlan is how a system's devices will verify their next update, decided before anything
// is built.
type trustPlan struct {
	// roots are baked into the image (bake.Options.TrustRoots).
	roots []*x509.Certificate
	// warnings are printed with the build result, on every build.
	warnings []string
}

// planTrust refuses a native system whose devices could not verify the update after the one
// they are built with: Rugix Ctrl 1.x installs a bundle only when its signature chains to a
// configured root or the installer passes --bundle-hash (rugix/rugix CHANGELOG 1.0.0 "Make
// signatures mandatory unless opted out"; src/operations/install/mod.rs
// start_verified_bundle). Such a device would refuse every update: it has to be reflashed.
func planTrust(cfg *project.Config, sys *project.System) (*trustPlan, error) {
	p := &trustPlan{}
	sg := sys.Signing
	fix := fmt.Sprintf("either sign the bundles (`otabake keys init` creates development keys; then set [systems.%[1]s.signing] key = \"keys/dev-signer.key\", cert = \"keys/dev-signer.crt\", roots = [\"keys/dev-ca.crt\"]), "+
		"or set use_bundle_hash = true in [systems.%[1]s] (devices then trust the bundle hash the Hub publishes), "+
		"or, for a throwaway development system only, [systems.%[1]s.signing] insecure_unsigned = true", sys.Name)
	if sg.InsecureUnsigned {
		if sys.UseBundleHash {
			return p, nil // verified by hash; the opt-out is moot
		}
		p.warnings = append(p.warnings, fmt.Sprintf("INSECURE: [systems.%s.signing] insecure_unsigned = true: the bundles are unsigned and the image trusts no root, so devices running Rugix Ctrl 1.x refuse every update (they would need --insecure-skip-bundle-verification); never ship this image", sys.Name))
		return p, nil
	}
	if sg.Key == "" {
		if !sys.UseBundleHash {
			return nil, fmt.Errorf("[systems.%s]: refusing to build a system whose devices could not verify their next update: it is not signed and use_bundle_hash is off, and Rugix Ctrl 1.x installs only bundles whose signature chains to a trusted root or whose hash is given; %s", sys.Name, fix)
		}
		return p, nil
	}
	if len(sg.Roots) > 0 {
		for _, r := range sg.Roots {
			certs, err := sign.LoadCertificates(cfg.Path(r))
			if err != nil {
				return nil, fmt.Errorf("[systems.%s.signing] roots: %w", sys.Name, err)
			}
			if len(certs) != 1 {
				return nil, fmt.Errorf("[systems.%s.signing] roots: %s holds %d certificates; give one root certificate per file (Rugix Ctrl reads each root file as one certificate)", sys.Name, r, len(certs))
			}
			p.roots = append(p.roots, certs[0])
		}
		return p, nil
	}
	files := append([]string{cfg.Path(sg.Cert)}, paths(cfg, sg.Chain)...)
	certs, err := sign.LoadCertificates(files...)
	if err != nil {
		return nil, fmt.Errorf("[systems.%s.signing]: %w", sys.Name, err)
	}
	root, ok := sign.ChainRoot(certs)
	switch {
	case ok && len(certs) > 1:
		p.roots = []*x509.Certificate{root}
	case ok:
		return nil, fmt.Errorf("[systems.%s.signing]: the signer certificate %s is self-signed; Rugix Ctrl 1.x refuses a CA used as end entity: sign with a certificate issued by a CA and set roots = [\"CA.crt\"] (`otabake keys init` makes such a pair)", sys.Name, sg.Cert)
	case sys.UseBundleHash:
		p.warnings = append(p.warnings, fmt.Sprintf("[systems.%s.signing]: the signer's chain does not end in its root, so the image trusts no root and devices rely on use_bundle_hash alone; set roots = [\"CA.crt\"] to let them verify the signature", sys.Name))
	default:
		return nil, fmt.Errorf("[systems.%s.signing]: refusing to build a system whose devices could not verify their next update: the chain of %s does not end in a self-signed root, so there is no root to bake into the image; set roots = [\"CA.crt\"] (the CA that issued the signer), or use_bundle_hash = true in [systems.%s]", sys.Name, sg.Cert, sys.Name)
	}
	return p, nil
}
