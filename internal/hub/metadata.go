package hub

import "encoding/json"

// The metadata otabake writes into the Hub and devices read back: the version's (prepare-release
// creates it, upload-release adds its record) and the assets' (upload-release attaches it).
// These types are the one statement of those documents on the Go side; the JSON Schemas
// bundle-asset-metadata and image-asset-metadata in schemas/ state them for everyone else, and a
// test keeps the two in step.
//
// Reading is lenient, as devices have always read it: Parse* ignore a value of the wrong type
// (it reads as absent) and malformed JSON (everything reads as absent), so that the caller
// decides what a missing value means.

// VersionMetadata is the metadata of a Hub version:
//
//	{"imageVersion": "build-…", "otabake": {"systems": ["efi", "pi"],
//	  "assets": {"efi": ["efi.spdx.json", "efi.img.xz", "efi.rugixb", …], "pi": […]}}}
//
// Other keys a version may carry (set by hand or by other tools) are not part of it; writers
// that update a version's metadata keep them (see the otabake record's merge in release).
type VersionMetadata struct {
	// ImageVersion is the release version the version's images and bundles report; devices
	// install when it differs from the version they run.
	ImageVersion string `json:"imageVersion"`
	// Otabake is upload-release's record of the systems of the version and their files.
	Otabake *VersionRecord `json:"otabake,omitempty"`
}

// Keys of VersionMetadata and VersionRecord, for writers that merge into metadata they do not
// own as a whole.
const (
	MetaOtabake = "otabake"
	MetaSystems = "systems"
	MetaAssets  = "assets"
)

// VersionRecord is otabake's record in a version's metadata: which systems belong to the
// version and which files each has. upload-release writes it before it sends the first byte,
// so a version whose upload is in flight (or died) lists files that are not attached yet.
type VersionRecord struct {
	Systems []string            `json:"systems,omitempty"`
	Assets  map[string][]string `json:"assets,omitempty"`
}

// ParseVersionMetadata reads a version's metadata leniently (see above).
func ParseVersionMetadata(raw json.RawMessage) VersionMetadata {
	var m VersionMetadata
	parseLenient(raw, &m)
	return m
}

// BundleAssetMetadata is the metadata of an update bundle asset (<name>.rugixb, <name>.raucb),
// schema bundle-asset-metadata.
type BundleAssetMetadata struct {
	// Rugix is set for Rugix bundles.
	Rugix *RugixBundleMetadata `json:"rugix,omitempty"`
	// Relations names the SBOM of the bundle, when the build wrote one.
	Relations *AssetRelations `json:"relations,omitempty"`
	// Version is the release version baked into the bundle.
	Version string `json:"version"`
}

// RugixBundleMetadata is the rugix object of a Rugix bundle's metadata.
type RugixBundleMetadata struct {
	// BundleHash is the bundle hash, <algorithm>:<hex>, that devices with useBundleHash
	// install with.
	BundleHash string `json:"bundleHash"`
}

// ImageAssetMetadata is the metadata of a disk image asset (<name>.img.xz …), schema
// image-asset-metadata.
type ImageAssetMetadata struct {
	Relations *AssetRelations `json:"relations,omitempty"`
}

// AssetRelations names the assets of the same version an asset relates to, by filename.
type AssetRelations struct {
	// SBOM are the SPDX SBOMs describing the asset.
	SBOM []string `json:"sbom"`
}

// ParseBundleAssetMetadata reads a bundle asset's metadata leniently (see above).
func ParseBundleAssetMetadata(raw json.RawMessage) BundleAssetMetadata {
	var m BundleAssetMetadata
	parseLenient(raw, &m)
	return m
}

// BundleHash returns rugix.bundleHash, or "".
func (m BundleAssetMetadata) BundleHash() string {
	if m.Rugix == nil {
		return ""
	}
	return m.Rugix.BundleHash
}

// parseLenient decodes what it can of raw into v: encoding/json leaves a field of the wrong
// type at its zero value and goes on with the others, and decodes nothing of malformed JSON.
func parseLenient(raw json.RawMessage, v any) {
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, v)
	}
}
