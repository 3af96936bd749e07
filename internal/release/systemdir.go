package release

import "path/filepath"

// SystemDir is build/<system>/, the file contract between build-release (each backend writes
// it), upload-release (which publishes it) and otabake run (which boots its image). Each file
// has one method; its name is spelled nowhere else. A backend that builds elsewhere first (the
// native backend's work directory) uses SystemDir{Dir: thatDir} for the same names.
type SystemDir struct {
	Dir string
}

// BuildRoot is a project's build/, which holds a directory per system (and build/otabake/,
// AgentDir).
func BuildRoot(projectDir string) string { return filepath.Join(projectDir, "build") }

// SystemDirOf is build/<system>/ of a project.
func SystemDirOf(projectDir, system string) SystemDir {
	return SystemDir{Dir: filepath.Join(BuildRoot(projectDir), system)}
}

// BuildDir is where build-release leaves the artifacts of a system (SystemDirOf's Dir).
func BuildDir(projectDir, system string) string { return SystemDirOf(projectDir, system).Dir }

// The files of build/<system>/.
const (
	imageFile     = "system.img"
	bmapExt       = ".bmap"
	rugixFile     = "system.rugixb"
	bundleHashExt = "-hash"
	raucFile      = "system.raucb"
	sbomFile      = "sbom.spdx.json"
	buildInfoFile = "system-build-info.json"
	osReleaseFile = "os-release"
)

// The names upload-release publishes those files under: <name><suffix>, name being the
// system's AssetName; the image adds its compression extension to assetImage.
const (
	assetImage      = ".img"
	assetRugix      = ".rugixb"
	assetBundleHash = assetRugix + bundleHashExt
	assetRauc       = ".raucb"
	assetSBOM       = ".spdx.json"
	assetBuildInfo  = ".build-info.json"
)

// ImageExts are the forms of the disk image build/<system>/ may hold, as extensions of Image:
// compressed as build-release leaves it, or raw (""), in upload-release's order of preference.
var ImageExts = []string{".xz", ".zst", ".bz2", ".gz", ""}

func (d SystemDir) file(name string) string { return filepath.Join(d.Dir, name) }

// Image is the raw disk image, system.img (the native backend assembles it there; the
// released form is compressed, see CompressedImage).
func (d SystemDir) Image() string { return d.file(imageFile) }

// CompressedImage is the disk image with a compression extension (".xz", ".zst", ".bz2",
// ".gz", or "" for the raw image): system.img.xz and so on.
func (d SystemDir) CompressedImage(ext string) string { return d.Image() + ext }

// Bmap is the block map of the raw image, system.img.bmap, for bmaptool.
func (d SystemDir) Bmap() string { return d.Image() + bmapExt }

// Bundle is the Rugix update bundle, system.rugixb (not written for engine = "rauc" systems).
func (d SystemDir) Bundle() string { return d.file(rugixFile) }

// BundleHash is the file holding the Rugix bundle's hash without a newline, as Rugix Bakery
// users write it with rugix-bundler hash: system.rugixb-hash.
func (d SystemDir) BundleHash() string { return BundleHashPath(d.Bundle()) }

// BundleHashPath is the hash file written next to a bundle: <bundle>-hash.
func BundleHashPath(bundlePath string) string { return bundlePath + bundleHashExt }

// RaucBundle is the RAUC update bundle, system.raucb: the native backend's for a system with
// engine = "rauc" (which then writes no Bundle), or what a Yocto build with meta-rauc deployed.
func (d SystemDir) RaucBundle() string { return d.file(raucFile) }

// SBOM is the SPDX SBOM of the image, sbom.spdx.json.
func (d SystemDir) SBOM() string { return d.file(sbomFile) }

// BuildInfo is the image's /etc/rugix/system-build-info.json, system-build-info.json: its
// name and release version.
func (d SystemDir) BuildInfo() string { return d.file(buildInfoFile) }

// OSRelease is the image's os-release as a Yocto build deploys it (IMAGE_ID, IMAGE_VERSION).
func (d SystemDir) OSRelease() string { return d.file(osReleaseFile) }
