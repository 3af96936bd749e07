package release

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/project"
)

// Artifact is one file of build/<system>/ as it is published.
type Artifact struct {
	System   string          `json:"system"`
	Path     string          `json:"path"`
	Filename string          `json:"filename"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Size     int64           `json:"size"`
	Digest   hub.Digest      `json:"digest,omitempty"`
	AssetID  string          `json:"assetId,omitempty"`
	// Uploaded is true when bytes were sent; Attached when the filename was newly added.
	Uploaded bool `json:"uploaded"`
	Attached bool `json:"attached"`
}

// UploadOptions tune Upload.
type UploadOptions struct {
	// Systems limits the upload to these systems; empty means every directory under build/.
	Systems []string
	// Progress reports bytes hashed and sent per file.
	Progress func(a *Artifact, done, total int64)
	// Upload carries HTTP and retry settings to hub.UploadFile.
	Upload hub.UploadOptions
}

// UploadReport lists every artifact with what happened to it.
type UploadReport struct {
	Version   string      `json:"version"`
	VersionID string      `json:"versionId"`
	Artifacts []*Artifact `json:"artifacts"`
	// Names says, per system, under which name its files were published when that is not the
	// system name (Yocto images are published under the name their devices report).
	Names map[string]AssetName `json:"names,omitempty"`
}

// CollectArtifacts lists what upload-release publishes for one system, each file named
// <name>.<kind> (see AssetName), and checks that the baked version equals version. It reads
// only small files (build info, os-release, hash).
func CollectArtifacts(dir, system, name, version string) ([]*Artifact, error) {
	if err := checkBakedVersion(dir, version); err != nil {
		return nil, err
	}
	d := SystemDir{Dir: dir}
	exists := func(path string) bool {
		st, err := os.Stat(path)
		return err == nil && st.Mode().IsRegular()
	}
	var arts []*Artifact
	add := func(path, filename string, meta any) {
		a := &Artifact{System: system, Path: path, Filename: filename}
		if meta != nil {
			a.Metadata, _ = json.Marshal(meta)
		}
		arts = append(arts, a)
	}
	sbomName := name + assetSBOM
	var rel *hub.AssetRelations
	if exists(d.SBOM()) {
		rel = &hub.AssetRelations{SBOM: []string{sbomName}}
		add(d.SBOM(), sbomName, nil)
	}
	if exists(d.BuildInfo()) {
		add(d.BuildInfo(), name+assetBuildInfo, nil)
	}
	// The disk image: compressed as build-release leaves it, or raw when built with
	// --image-compression none. It has metadata only when there is an SBOM to relate it to.
	var imageMeta any
	if rel != nil {
		imageMeta = hub.ImageAssetMetadata{Relations: rel}
	}
	for _, ext := range ImageExts {
		if exists(d.CompressedImage(ext)) {
			add(d.CompressedImage(ext), name+assetImage+ext, imageMeta)
			break
		}
	}
	if exists(d.Bundle()) {
		bundleHash, err := bundleHashFor(d)
		if err != nil {
			return nil, err
		}
		add(d.Bundle(), name+assetRugix, hub.BundleAssetMetadata{
			Rugix:     &hub.RugixBundleMetadata{BundleHash: bundleHash},
			Relations: rel,
			Version:   version,
		})
		if exists(d.BundleHash()) {
			add(d.BundleHash(), name+assetBundleHash, nil)
		}
	}
	if exists(d.RaucBundle()) {
		// <name>.raucb is the file nexigon-rauc-ota looks up ($IMAGE_ID.raucb, nexigon/meta-nexigon
		// meta-nexigon-rauc/recipes-nexigon/nexigon-rauc-ota/files/nexigon-rauc-ota) and that
		// meta-nexigon's scripts/upload-release.sh attaches, there without metadata: RAUC needs
		// no bundle hash (it checks the signature against its keyring), so the metadata is the
		// version and, as for a Rugix bundle, the SBOM it relates to.
		add(d.RaucBundle(), name+assetRauc, hub.BundleAssetMetadata{Relations: rel, Version: version})
	}
	if len(arts) == 0 {
		return nil, fmt.Errorf("%s: nothing to upload (no %s, %s or %s): run 'otabake build-release %s'", dir, imageFile+".xz", rugixFile, raucFile, system)
	}
	return arts, nil
}

// bundleHashFor returns the bundle hash of the build's Rugix bundle, read from its header, and
// checks it against the bundle hash file when that exists: a stale hash file would make devices
// with useBundleHash refuse the update.
func bundleHashFor(d SystemDir) (string, error) {
	bpath := d.Bundle()
	h, err := bundle.HashFile(bpath)
	if err != nil {
		return "", fmt.Errorf("read bundle hash of %s: %w", bpath, err)
	}
	hpath := d.BundleHash()
	data, err := os.ReadFile(hpath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return h, nil
	case err != nil:
		return "", err
	}
	if got := strings.TrimSpace(string(data)); got != h {
		return "", fmt.Errorf("%s says %s but the bundle's header hash is %s: rebuild, or rewrite it with 'otabake bundle hash %s --output %s'", hpath, got, h, bpath, hpath)
	}
	return h, nil
}

// checkBakedVersion refuses a build directory whose baked version is not version: uploading it
// would make devices install an image that reports another version and loop forever.
func checkBakedVersion(dir, version string) error {
	d := SystemDir{Dir: dir}
	infoPath := d.BuildInfo()
	data, err := os.ReadFile(infoPath)
	if err == nil {
		var info struct {
			Release struct {
				Version string `json:"version"`
			} `json:"release"`
		}
		if err := json.Unmarshal(data, &info); err != nil {
			return fmt.Errorf("%s: %w", infoPath, err)
		}
		if info.Release.Version != version {
			return fmt.Errorf("version mismatch: %s has release.version %q but .release-env has VERSION %q: rebuild with 'otabake build-release'", infoPath, info.Release.Version, version)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	osr := d.OSRelease()
	v, ok, err := osReleaseValue(osr, "IMAGE_VERSION")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: neither %s nor %s says which version was built: run 'otabake build-release'", dir, buildInfoFile, osReleaseFile)
		}
		return err
	}
	if !ok {
		return fmt.Errorf("%s has no IMAGE_VERSION: the image does not say which version it is", osr)
	}
	if v != version {
		return fmt.Errorf("version mismatch: %s has IMAGE_VERSION %q but .release-env has VERSION %q: rebuild with 'otabake build-release'", osr, v, version)
	}
	return nil
}

// osReleaseValue reads KEY from an os-release file, unquoting the value.
func osReleaseValue(path, key string) (string, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok && k == key {
			return strings.Trim(v, `"'`), true, nil
		}
	}
	return "", false, sc.Err()
}

// Systems lists the systems with a build directory, sorted. When the project configures
// systems, only theirs count: a Yocto project's build/ also holds BitBake's tmp/, and a system
// removed from otabake.toml is no longer released.
func Systems(cfg *project.Config) ([]string, error) {
	projectDir := cfg.Dir
	ents, err := os.ReadDir(BuildRoot(projectDir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no build/ directory in %s: run 'otabake build-release SYSTEM' first", projectDir)
		}
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || e.Name() == "otabake" {
			continue
		}
		if _, err := cfg.System(e.Name()); len(cfg.Systems) > 0 && err != nil {
			continue
		}
		out = append(out, e.Name())
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("build/ in %s holds no system: run 'otabake build-release SYSTEM' first", projectDir)
	}
	return out, nil
}

// Upload publishes build/<system>/ of every selected system into the version pinned by id:
// each artifact is uploaded content-addressed and attached with its metadata. All systems are
// checked before the first byte is sent. The version's metadata records which systems belong
// to it and their file names (otabake.systems, otabake.assets; other keys are kept), which is
// what promote-release checks. Re-running uploads nothing new and succeeds.
func Upload(ctx context.Context, h hub.Hub, cfg *project.Config, id *Identity, opts UploadOptions) (*UploadReport, error) {
	if err := RequirePackage(cfg); err != nil {
		return nil, err
	}
	systems := opts.Systems
	if len(systems) == 0 {
		var err error
		if systems, err = Systems(cfg); err != nil {
			return nil, err
		}
	}
	var arts []*Artifact
	names := map[string]AssetName{}
	for _, s := range systems {
		dir := BuildDir(cfg.Dir, s)
		n, err := assetNameFor(cfg, s, dir)
		if err != nil {
			return nil, err
		}
		if n.Name != s {
			names[s] = n
		}
		a, err := CollectArtifacts(dir, s, n.Name, id.Version)
		if err != nil {
			return nil, err
		}
		arts = append(arts, a...)
	}
	path := hub.VersionPath{Repository: cfg.Hub.Repository, Package: cfg.Hub.Package, Tag: id.BuildTag}
	ref, found, err := h.ResolveVersion(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", path, err)
	}
	if !found {
		return nil, fmt.Errorf("version %s not found in the Hub: run 'otabake prepare-release' first", path)
	}
	if id.VersionID != "" && id.VersionID != ref.VersionID {
		return nil, fmt.Errorf("%s resolves to %s but .release-env has VERSION_ID %s: run 'otabake prepare-release' again", path, ref.VersionID, id.VersionID)
	}
	if err := checkImageVersion(ctx, h, ref.VersionID, id.Version); err != nil {
		return nil, err
	}
	// Say which systems belong to the version, and which files each has, before the first
	// byte: promote-release refuses the version until all of them are attached.
	if err := recordSystems(ctx, h, ref.VersionID, arts); err != nil {
		return nil, err
	}
	rep := &UploadReport{Version: id.Version, VersionID: ref.VersionID, Artifacts: arts}
	if len(names) > 0 {
		rep.Names = names
	}
	for _, a := range arts {
		uo := opts.Upload
		if opts.Progress != nil {
			a := a
			uo.Progress = func(done, total int64) { opts.Progress(a, done, total) }
		}
		res, err := hub.UploadFile(ctx, h, ref.RepositoryID, a.Path, uo)
		if err != nil {
			return rep, fmt.Errorf("upload %s: %w", a.Path, err)
		}
		a.AssetID, a.Digest, a.Size, a.Uploaded = res.AssetID, res.Digest, res.Size, res.Uploaded
		added, err := hub.AttachAsset(ctx, h, ref.VersionID, res.AssetID, res.Digest, a.Filename, a.Metadata)
		if err != nil {
			return rep, fmt.Errorf("attach %s as %s: %w", a.Path, a.Filename, err)
		}
		a.Attached = added
	}
	// Another upload-release into this version (another system, in parallel) may have
	// replaced the metadata with a copy read before ours was written: write ours again.
	if err := recordSystems(ctx, h, ref.VersionID, arts); err != nil {
		return rep, err
	}
	return rep, nil
}
