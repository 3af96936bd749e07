package release

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/bake"
	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/image"
	"github.com/otabake/otabake/internal/project"
	"github.com/otabake/otabake/internal/raucb"
	"github.com/otabake/otabake/internal/rootfs"
	"github.com/otabake/otabake/internal/sbom"
	"github.com/otabake/otabake/internal/sign"
)

// buildNative makes build/<system>/ from a root filesystem without any other build system:
// stage and bake the rootfs, generate the SBOM, build the partition images and the disk image,
// encode the update bundle from the same boot and system partition images, hash and sign it,
// compress the image and write its bmap. Everything is produced in a work directory next to
// build/<system>/ and moved into place only when complete, so a failed build never leaves a
// build directory that looks finished.
//
// Every time written into the artifacts is bt.Time (BuildTimeOf's rule), never the clock;
// trust is the plan Build made with planTrust before building any system.
func buildNative(ctx context.Context, cfg *project.Config, id *Identity, sys *project.System, trust *trustPlan, bt BuildTime, opts BuildOptions) (_ *BuildResult, err error) {
	if sys.Rootfs == "" {
		return nil, fmt.Errorf("the native backend needs rootfs = \"DIR or TARBALL\" in [systems.%s]", sys.Name)
	}
	target, err := image.TargetByName(sys.Target, sys.Arch)
	if err != nil {
		return nil, fmt.Errorf("[systems.%s]: %w", sys.Name, err)
	}
	if sys.Engine == project.EngineRauc {
		if target, err = target.WithRAUC(); err != nil {
			return nil, fmt.Errorf("[systems.%s]: %w", sys.Name, err)
		}
	}
	compression, err := image.ParseCompression(opts.ImageCompression)
	if err != nil {
		return nil, err
	}
	src := cfg.Path(sys.Rootfs)
	sde := bt.Time
	releaseID := bake.ReleaseID(sys.Name, id.Version, "")

	dest := BuildDir(cfg.Dir, sys.Name)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(dest), err)
	}
	work, err := os.MkdirTemp(filepath.Dir(dest), "."+sys.Name+".work-")
	if err != nil {
		return nil, fmt.Errorf("create a work directory next to %s: %w", dest, err)
	}
	// Should the process be ended while a step blocks, Main removes the work directory
	// (atomicfile.RemovePending); on every other path the deferred RemoveAll does.
	defer atomicfile.Track(work)()
	defer func() {
		if rerr := os.RemoveAll(work); rerr != nil && err == nil {
			err = rerr
		}
	}()
	// The build is written to out with build/<system>/'s names, then moved into place.
	out := SystemDir{Dir: filepath.Join(work, "out")}
	if err := os.Mkdir(out.Dir, 0o755); err != nil {
		return nil, err
	}
	r := &BuildResult{System: sys.Name, Backend: project.BackendNative, Dir: dest, BuildTime: &bt, Warnings: append([]string(nil), trust.warnings...)}
	t := &stageTimer{r: r, opts: opts}
	defer t.end()

	// Stage the rootfs: extract a tarball, or clone a directory so that baking never touches
	// the user's tree.
	t.begin("rootfs")
	tree, err := rootfs.Open(ctx, src, filepath.Join(work, "extract"), rootfs.Options{Clamp: sde})
	if err != nil {
		return nil, err
	}
	rootDir := tree.Dir
	if rootDir == src {
		rootDir = filepath.Join(work, "rootfs")
		if err := rootfs.Clone(ctx, src, rootDir); err != nil {
			return nil, err
		}
	}

	t.begin("bake")
	otaPath := ""
	if cfg.Hub.Repository != "" && cfg.Hub.Package != "" {
		otaPath = cfg.Hub.Repository + "/" + cfg.Hub.Package + "/" + cfg.Hub.DefaultTag
	}
	bakeOpts := bake.Options{
		System: sys.Name, Version: id.Version, ReleaseID: releaseID,
		OTAPath: otaPath, UseBundleHash: sys.UseBundleHash, Target: sys.Target,
		TrustRoots: trust.roots,
	}
	if sys.Engine == project.EngineRauc {
		// The agent drives rauc (agent.toml engine); RAUC's keyring holds the trust roots and
		// /etc/rauc/system.conf replaces Rugix Ctrl's system.toml. project.Load defaults the
		// compatible to the system name.
		bakeOpts.Engine, bakeOpts.RaucCompatible = project.EngineRauc, sys.Rauc.Compatible
	}
	baked, err := bake.Bake(ctx, rootDir, bakeOpts)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(out.BuildInfo(), baked.BuildInfoJSON, 0o644); err != nil {
		return nil, err
	}

	t.begin("sbom")
	doc, warnings, err := sbom.Generate(rootDir, sbom.Options{System: sys.Name, Version: id.Version, ReleaseID: releaseID, Created: sde})
	if err != nil {
		return nil, fmt.Errorf("SBOM of %s: %w", src, err)
	}
	r.Warnings = append(r.Warnings, warnings...)
	if err := atomicfile.WriteFile(out.SBOM(), doc, 0o644); err != nil {
		return nil, err
	}

	t.begin("partitions")
	size, err := image.TreeSize(rootDir)
	if err != nil {
		return nil, err
	}
	layout, err := image.Plan(target, image.Sizes{Config: sys.Sizes.Config, BootA: sys.Sizes.Boot, BootB: sys.Sizes.Boot, System: sys.Sizes.System, Image: sys.Sizes.Total}, size)
	if err != nil {
		return nil, fmt.Errorf("[systems.%s] layout: %w", sys.Name, err)
	}
	ids := image.DeriveIdentifiers(sys.Name, releaseID)
	bootloader := ""
	if sys.Grub.EFIBinary != "" {
		bootloader = cfg.Path(sys.Grub.EFIBinary)
	}
	bootDir := ""
	if sys.Boot != "" {
		bootDir = cfg.Path(sys.Boot)
		if st, err := os.Stat(bootDir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("[systems.%s] boot = %q: not a directory", sys.Name, sys.Boot)
		}
	}
	parts, err := image.BuildPartitions(ctx, image.Input{
		Target: target, Layout: layout, IDs: ids, RootfsDir: rootDir, BootDir: bootDir, Bootloader: bootloader, PreferMkimage: sys.Grub.PreferMkimage,
		WorkDir: filepath.Join(work, "parts"), SourceDateEpoch: sde, SystemFixups: tree.Fixups(),
	})
	if err != nil {
		return nil, err
	}

	t.begin("disk image")
	img := out.Image()
	if err := image.Assemble(ctx, layout, parts, img, ids); err != nil {
		return nil, err
	}

	if sys.Engine == project.EngineRauc {
		// A RAUC system's devices install RAUC bundles only: it gets system.raucb and no
		// system.rugixb (nor its hash), so that nothing Rugix Ctrl cannot use is published.
		t.begin("rauc bundle")
		signer, err := loadSigner(ctx, cfg, sys, trust, sde)
		if err != nil {
			return nil, err
		}
		spec, err := raucSpec(sys, id, releaseID, layout, parts, signer, sde)
		if err != nil {
			return nil, err
		}
		if _, err := raucb.Create(ctx, out.RaucBundle(), spec); err != nil {
			return nil, err
		}
	} else {
		t.begin("bundle")
		bundlePath := out.Bundle()
		spec, err := bundleSpec(sys, layout, parts)
		if err != nil {
			return nil, err
		}
		if _, err := bundle.Create(ctx, bundlePath, spec, bundle.CreateOptions{TempDir: work}); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		if sys.Signing.Key != "" {
			t.begin("sign")
			signer, err := loadSigner(ctx, cfg, sys, trust, sde)
			if err != nil {
				return nil, err
			}
			if err := bundle.Sign(ctx, bundlePath, bundlePath, signer); err != nil {
				return nil, fmt.Errorf("sign %s: %w", bundlePath, err)
			}
		}
		if err := writeBundleHash(bundlePath); err != nil {
			return nil, err
		}
	}

	t.begin("compress image")
	if err := image.WriteBmap(img, out.Bmap()); err != nil {
		return nil, err
	}
	if _, err := compression.Compress(ctx, img, runtime.NumCPU()); err != nil {
		return nil, fmt.Errorf("compress %s: %w", img, err)
	}
	t.end()

	if err := replaceDir(out.Dir, dest); err != nil {
		return nil, err
	}
	return r, listFiles(r)
}

// loadSigner loads the system's signer, checks that it chains to the trust roots baked into
// the image, and sets its signing time to the build's time sde.
func loadSigner(ctx context.Context, cfg *project.Config, sys *project.System, trust *trustPlan, sde time.Time) (*sign.Signer, error) {
	if sys.Signing.Key == "" {
		return nil, fmt.Errorf("[systems.%s.signing]: no key: the bundle must be signed", sys.Name)
	}
	signer, err := sign.LoadSigner(ctx, signingRef(cfg, sys.Signing.Key), cfg.Path(sys.Signing.Cert), paths(cfg, sys.Signing.Chain), sys.Signing.PasswordEnv)
	if err != nil {
		return nil, fmt.Errorf("[systems.%s.signing]: %w", sys.Name, err)
	}
	if len(trust.roots) > 0 {
		// Validity is checked at the clock's time on purpose: a rebuild must not sign with
		// a certificate that has expired since. It writes nothing.
		if err := signer.CheckChainsTo(trust.roots, time.Now()); err != nil {
			return nil, fmt.Errorf("[systems.%s.signing]: %w; set roots to the CA that issued %s", sys.Name, err, sys.Signing.Cert)
		}
	}
	// The release's time, not the clock: building the release again signs the same bytes.
	signer.SigningTime = sde
	return signer, nil
}

// raucSpec is the native RAUC bundle: the same boot and system partition images the disk
// image holds, for the slot classes of the RAUC layout (image.RaucSlotRootfs: system-a and
// system-b; image.RaucSlotBoot: boot-a and boot-b, child slots of the rootfs slots, so RAUC
// writes both of the spare side), as rootfs.ext4 and boot.ext4 (RAUC picks the ext4 image-to-slot handler by the
// .ext4 suffix, rauc src/update_handler.c updatehandlers), compatible from the system (project.Load
// defaults it to the system name), version the release's, build the release id, signed by
// signer at the build's time.
func raucSpec(sys *project.System, id *Identity, releaseID string, layout image.Layout, parts *image.Partitions, signer *sign.Signer, sde time.Time) (raucb.Spec, error) {
	spec := raucb.Spec{Compatible: sys.Rauc.Compatible, Version: id.Version, Build: releaseID, Signer: signer, Time: sde}
	for _, p := range []struct {
		role image.Role
		slot string
		path string
	}{{image.RoleSystemA, image.RaucSlotRootfs, parts.System}, {image.RoleBootA, image.RaucSlotBoot, parts.Boot}} {
		part, ok := layout.ByRole(p.role)
		if !ok || p.path == "" {
			return raucb.Spec{}, fmt.Errorf("layout has no %s partition image", p.role)
		}
		if part.FS != image.FSExt4 {
			return raucb.Spec{}, fmt.Errorf("[systems.%s]: the %s partition is %q, not ext4: target %s has no RAUC layout", sys.Name, p.role, part.FS, sys.Target)
		}
		spec.Images = append(spec.Images, raucb.Image{SlotClass: p.slot, Path: p.path, Filename: p.slot + ".ext4"})
	}
	return spec, nil
}

// bundleSpec is the full update bundle Bakery builds for a target (rugix-images.md §9): the
// boot and system partition images as slot payloads named partition-<N>.img, with the
// configured block encoding.
func bundleSpec(sys *project.System, layout image.Layout, parts *image.Partitions) (bundle.Spec, error) {
	enc := &bundle.BlockEncoding{Chunker: sys.Bundle.Chunker, Deduplicate: sys.Bundle.Deduplicate}
	if sys.Bundle.Hash != "" && sys.Bundle.Hash != "sha512-256" {
		alg, err := bundle.ParseHashAlgorithm(sys.Bundle.Hash)
		if err != nil {
			return bundle.Spec{}, fmt.Errorf("[systems.%s.bundle] hash: %w", sys.Name, err)
		}
		enc.HashAlgorithm = alg
	}
	if sys.Bundle.Compression != "none" {
		enc.Compression = &bundle.Compression{}
		if sys.Bundle.XZPreset != bundle.DefaultXZLevel {
			level := sys.Bundle.XZPreset
			enc.Compression.Level = &level
		}
	}
	var spec bundle.Spec
	for _, p := range []struct {
		role image.Role
		slot string
		path string
	}{{image.RoleBootA, "boot", parts.Boot}, {image.RoleSystemA, "system", parts.System}} {
		part, ok := layout.ByRole(p.role)
		if !ok || p.path == "" {
			return bundle.Spec{}, fmt.Errorf("layout has no %s partition image", p.role)
		}
		spec.Payloads = append(spec.Payloads, bundle.Payload{
			Filename: fmt.Sprintf("partition-%d.img", part.Number), Slot: p.slot, Path: p.path, BlockEncoding: enc,
		})
	}
	return spec, nil
}

// signingRef resolves a key reference: KMS URIs stay as they are, files are project-relative.
func signingRef(cfg *project.Config, key string) string {
	if u := key; len(u) > 3 && containsScheme(u) {
		return u
	}
	return cfg.Path(key)
}

func containsScheme(s string) bool {
	for i := 0; i < len(s)-2; i++ {
		if s[i:i+3] == "://" {
			return i > 0
		}
	}
	return false
}

func paths(cfg *project.Config, ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = cfg.Path(p)
	}
	return out
}

// replaceDir moves the finished directory src to dest, replacing what dest held: the old
// build is renamed aside first and removed only after the new one is in place.
func replaceDir(src, dest string) error {
	var old string
	if _, err := os.Stat(dest); err == nil {
		b := make([]byte, 6)
		rand.Read(b)
		old = filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".old-"+hex.EncodeToString(b))
		if err := os.Rename(dest, old); err != nil {
			return fmt.Errorf("move the previous %s aside: %w", dest, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(src, dest); err != nil {
		if old != "" {
			os.Rename(old, dest)
		}
		return fmt.Errorf("move the new build into %s: %w", dest, err)
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}
