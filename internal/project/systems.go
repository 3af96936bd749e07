package project

import (
	"fmt"
	"path"
	"strings"

	"github.com/otabake/otabake/internal/chunker"
)

var (
	targets  = []string{TargetEFIGrub, TargetRPiTryboot, TargetRPiUBoot}
	archs    = []string{ArchAMD64, ArchARM64, ArchARMHF}
	backends = []string{BackendNative, BackendBakery, BackendYocto}
	engines  = []string{EngineRugix, EngineRauc}
	hashes   = []string{"sha256", "sha512-256", "sha512"}
)

// Engines lists the update engines, the default first.
func Engines() []string { return append([]string(nil), engines...) }

// Backends lists the build backends, in the order help texts name them.
func Backends() []string { return append([]string(nil), backends...) }

// ValidBackend reports whether name is a build backend.
func ValidBackend(name string) bool { return oneOf(name, backends) }

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// resolveSystems merges the rugix-bakery.toml systems with the [systems.NAME] tables of
// otabake.toml (which win field by field) and validates each one. Bakery systems come first,
// in their file order, then the systems only otabake.toml defines, in its file order.
func (l *loader) resolveSystems() error {
	byName := map[string]*System{}
	for _, s := range l.bakery {
		byName[s.Name] = s
		l.cfg.Systems = append(l.cfg.Systems, s)
	}
	if l.doc != nil {
		seen := map[string]bool{}
		for _, k := range l.doc.md.Keys() {
			if len(k) < 2 || k[0] != "systems" || seen[k[1]] {
				continue
			}
			name := k[1]
			seen[name] = true
			loc := l.doc.where(k[:2]...)
			if err := validSystemName(name); err != nil {
				return fmt.Errorf("%s: %w", loc, err)
			}
			fs := l.file.Systems[name]
			if fs == nil {
				continue
			}
			s, ok := byName[name]
			if !ok {
				s = &System{Name: name, Bundle: defaultBundle(), Source: loc}
				byName[name] = s
				l.cfg.Systems = append(l.cfg.Systems, s)
			} else {
				s.Source += ", " + loc
			}
			if err := l.applyFileSystem(s, fs); err != nil {
				return err
			}
		}
	}
	for _, s := range l.cfg.Systems {
		if err := l.validateSystem(s); err != nil {
			return err
		}
	}
	return nil
}

// applyFileSystem copies the fields an otabake.toml system table sets onto s, checking enums.
func (l *loader) applyFileSystem(s *System, fs *fileSystem) error {
	at := func(key ...string) string { return l.doc.where(append([]string{"systems", s.Name}, key...)...) }
	bad := func(key, value string, allowed []string) error {
		return fmt.Errorf("%s: systems.%s.%s: unknown value %q; want %s", at(strings.Split(key, ".")...), s.Name, key, value, strings.Join(allowed, ", "))
	}
	if fs.Target != "" {
		if !oneOf(fs.Target, targets) {
			return bad("target", fs.Target, targets)
		}
		s.Target = fs.Target
	}
	if fs.Architecture != "" {
		if !oneOf(fs.Architecture, archs) {
			return bad("architecture", fs.Architecture, archs)
		}
		s.Arch = fs.Architecture
	}
	if fs.Engine != "" {
		if !oneOf(fs.Engine, engines) {
			return bad("engine", fs.Engine, engines)
		}
		s.Engine = fs.Engine
	}
	if c := fs.Rauc.Compatible; c != "" {
		if err := validCompatible(c); err != nil {
			return fmt.Errorf("%s: systems.%s.rauc.compatible: %w", at("rauc", "compatible"), s.Name, err)
		}
		s.Rauc.Compatible = c
	}
	if fs.Rootfs != "" {
		s.Rootfs = fs.Rootfs
		if s.Backend == BackendBakery {
			s.Backend = "" // a rootfs means a native build unless backend says otherwise
		}
	}
	if fs.Boot != "" {
		s.Boot = fs.Boot
	}
	if fs.Backend != "" {
		if !oneOf(fs.Backend, backends) {
			return bad("backend", fs.Backend, backends)
		}
		s.Backend = fs.Backend
	}
	setSize := func(dst *int64, v Size) {
		if v != 0 {
			*dst = int64(v)
		}
	}
	setSize(&s.Sizes.Config, fs.Sizes.Config)
	setSize(&s.Sizes.Boot, fs.Sizes.Boot)
	setSize(&s.Sizes.System, fs.Sizes.System)
	setSize(&s.Sizes.Total, fs.Sizes.Total)

	b := fs.Bundle
	if b.Chunker != "" {
		if err := validChunker(b.Chunker); err != nil {
			return fmt.Errorf("%s: systems.%s.bundle.chunker: %w", at("bundle", "chunker"), s.Name, err)
		}
		s.Bundle.Chunker = b.Chunker
	}
	if b.Hash != "" {
		if !oneOf(b.Hash, hashes) {
			return bad("bundle.hash", b.Hash, hashes)
		}
		s.Bundle.Hash = b.Hash
	}
	if b.Deduplicate != nil {
		s.Bundle.Deduplicate = *b.Deduplicate
	}
	if b.Compression != "" {
		if b.Compression != "xz" && b.Compression != "none" {
			return bad("bundle.compression", b.Compression, []string{"xz", "none"})
		}
		s.Bundle.Compression = b.Compression
	}
	if b.XZPreset != nil {
		if *b.XZPreset < 0 || *b.XZPreset > 9 {
			return fmt.Errorf("%s: systems.%s.bundle.xz_preset: %d is out of range; want 0..9", at("bundle", "xz_preset"), s.Name, *b.XZPreset)
		}
		s.Bundle.XZPreset = *b.XZPreset
	}

	sg := fs.Signing
	if sg.Key != "" {
		s.Signing.Key = sg.Key
	}
	if sg.Cert != "" {
		s.Signing.Cert = sg.Cert
	}
	if sg.Chain != nil {
		s.Signing.Chain = sg.Chain
	}
	if sg.PasswordEnv != "" {
		if !validEnvName(sg.PasswordEnv) {
			return fmt.Errorf("%s: systems.%s.signing.password_env: %q is not an environment variable name", at("signing", "password_env"), s.Name, sg.PasswordEnv)
		}
		s.Signing.PasswordEnv = sg.PasswordEnv
	}
	if sg.Roots != nil {
		for i, r := range sg.Roots {
			if r == "" {
				return fmt.Errorf("%s: systems.%s.signing.roots[%d]: empty path; want a PEM certificate file", at("signing", "roots"), s.Name, i)
			}
		}
		s.Signing.Roots = sg.Roots
	}
	if sg.InsecureUnsigned {
		s.Signing.InsecureUnsigned = true
	}
	if fs.UseBundleHash != nil {
		s.UseBundleHash = *fs.UseBundleHash
	}
	if fs.Yocto.Machine != "" {
		s.Yocto.Machine = fs.Yocto.Machine
	}
	if fs.Yocto.Image != "" {
		s.Yocto.Image = fs.Yocto.Image
	}
	if fs.Yocto.DeployDir != "" {
		s.Yocto.DeployDir = fs.Yocto.DeployDir
	}
	if fs.Yocto.ImageID != "" {
		s.Yocto.ImageID = fs.Yocto.ImageID
	}
	if fs.Grub.PreferMkimage {
		s.Grub.PreferMkimage = true
	}
	if fs.Grub.EFIBinary != "" {
		s.Grub.EFIBinary = fs.Grub.EFIBinary
	}
	return nil
}

// validateSystem checks what a system needs for its backend, after merging.
func (l *loader) validateSystem(s *System) error {
	at := func(key ...string) string {
		if l.doc != nil && l.doc.md.IsDefined("systems", s.Name) {
			return l.doc.where(append([]string{"systems", s.Name}, key...)...)
		}
		return s.Source
	}
	if s.Backend == "" {
		switch {
		case s.Rootfs != "":
			s.Backend = BackendNative
		case s.Yocto.Machine != "":
			s.Backend = BackendYocto
		default:
			return fmt.Errorf("%s: systems.%s: no build backend: set rootfs (native), yocto.machine (yocto) or backend = \"bakery\" with the system in %s", at(), s.Name, BakeryFileName)
		}
	}
	switch s.Backend {
	case BackendNative:
		if s.Rootfs == "" {
			return fmt.Errorf("%s: systems.%s: the native backend needs rootfs (a directory or tarball)", at(), s.Name)
		}
		if s.Target == "" {
			return fmt.Errorf("%s: systems.%s: the native backend needs target (%s)", at(), s.Name, strings.Join(targets, ", "))
		}
		if s.Arch == "" {
			return fmt.Errorf("%s: systems.%s: the native backend needs architecture (%s)", at(), s.Name, strings.Join(archs, ", "))
		}
	case BackendBakery:
		if s.Bakery.Layer == "" {
			return fmt.Errorf("%s: systems.%s: backend bakery, but %s has no [systems.%s]", at("backend"), s.Name, BakeryFileName, s.Name)
		}
	case BackendYocto:
		if s.Yocto.Machine == "" {
			return fmt.Errorf("%s: systems.%s: the yocto backend needs yocto.machine", at(), s.Name)
		}
		if s.Yocto.DeployDir == "" {
			s.Yocto.DeployDir = path.Join("build/tmp/deploy/images", s.Yocto.Machine)
		}
	}
	if s.Engine == "" {
		s.Engine = EngineRugix
	}
	if s.Engine == EngineRauc {
		if s.Rauc.Compatible == "" {
			s.Rauc.Compatible = s.Name
		}
		// The native backend builds RAUC's boot flow only for efi-grub (RAUC's grub backend).
		if s.Backend == BackendNative && s.Target != TargetEFIGrub {
			return fmt.Errorf("%s: systems.%s.engine: the native backend builds RAUC systems for target %s only, not %q", at("engine"), s.Name, TargetEFIGrub, s.Target)
		}
		if s.Backend == BackendNative && s.Signing.Key == "" {
			return fmt.Errorf("%s: systems.%s: engine rauc needs signing.key and signing.cert: RAUC installs signed bundles only; create development keys with `otabake keys init`", at("signing"), s.Name)
		}
		if s.UseBundleHash {
			return fmt.Errorf("%s: systems.%s.use_bundle_hash: a Rugix bundle hash (rugix-ctrl --bundle-hash); RAUC checks the bundle's signature against the keyring instead", at("use_bundle_hash"), s.Name)
		}
	} else if s.Rauc.Compatible != "" {
		return fmt.Errorf("%s: systems.%s.rauc.compatible: only applies to engine = %q, not %q", at("rauc", "compatible"), s.Name, EngineRauc, s.Engine)
	}
	if s.Grub.EFIBinary != "" && s.Target != TargetEFIGrub {
		return fmt.Errorf("%s: systems.%s.grub.efi_binary: only applies to target %s, not %q", at("grub", "efi_binary"), s.Name, TargetEFIGrub, s.Target)
	}
	sg := s.Signing
	if sg.Key == "" && (sg.Cert != "" || len(sg.Chain) > 0 || sg.PasswordEnv != "") {
		return fmt.Errorf("%s: systems.%s.signing: cert, chain and password_env need key", at("signing"), s.Name)
	}
	if sg.Key != "" && sg.Cert == "" {
		return fmt.Errorf("%s: systems.%s.signing: key needs cert (the signer's X.509 certificate)", at("signing"), s.Name)
	}
	if sg.Key == "" && len(sg.Roots) > 0 {
		return fmt.Errorf("%s: systems.%s.signing.roots: roots need key and cert (build-release signs the bundles the roots verify); create development keys with `otabake keys init`", at("signing", "roots"), s.Name)
	}
	if sg.Key != "" && sg.InsecureUnsigned {
		return fmt.Errorf("%s: systems.%s.signing: insecure_unsigned contradicts key; remove insecure_unsigned", at("signing", "insecure_unsigned"), s.Name)
	}
	return nil
}

// validCompatible checks a RAUC compatible string with the rules of raucb (what GKeyFile keeps
// as it is): no control characters, no leading or trailing white space.
func validCompatible(c string) error {
	if strings.TrimSpace(c) != c {
		return fmt.Errorf("%q starts or ends with white space", c)
	}
	for _, r := range c {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q has a control character", c)
		}
	}
	return nil
}

// validChunker checks "casync-<KiB>" or "fixed-<KiB>" as Rugix parses them (rugix-bundle.md
// §3.1), with blocks otabake can also read back (chunker.MaxBlockSize).
func validChunker(c string) error {
	spec, err := chunker.ParseSpec(c)
	if err != nil {
		return fmt.Errorf("unknown chunker %q; want casync-<avg KiB> or fixed-<KiB>, e.g. casync-64: %w", c, err)
	}
	return spec.CheckBlockSize()
}
