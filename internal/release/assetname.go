package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/project"
)

// AssetName says under which name a system's files are published (<name>.rugixb, <name>.raucb,
// …) and why. Devices look their bundle up by the name they report themselves: the "name" of
// /etc/rugix/system-build-info.json when the image has one, otherwise IMAGE_ID of os-release
// (otabake-agent, and nexigon-rugix-ota in nexigon/meta-nexigon
// meta-nexigon-rugix/recipes-nexigon/nexigon-rugix-ota/files/nexigon-rugix-ota, read them in
// that order).
type AssetName struct {
	// Name is the base of every asset's filename.
	Name string `json:"name"`
	// Source says where Name comes from: "system name", "system-build-info.json",
	// "os-release IMAGE_ID" or "machine (no IMAGE_ID)".
	Source string `json:"source"`
}

// assetNameFor decides the asset name of system, whose build directory is dir. Native and
// Bakery systems bake their own name into the image, so it is the system name. A Yocto image
// reports what its build gave it: the collected system-build-info.json's name, else the
// deployed os-release's IMAGE_ID, else (as nexigon/meta-nexigon scripts/upload-release.sh
// falls back) the machine. A configured yocto.image_id that the build contradicts, or a build
// info name that contradicts IMAGE_ID, is refused with both names: devices would look for one
// and find the other.
func assetNameFor(cfg *project.Config, system, dir string) (AssetName, error) {
	sys, err := cfg.System(system)
	if err != nil || sys.Backend != project.BackendYocto {
		return AssetName{Name: system, Source: "system name"}, nil
	}
	d := SystemDir{Dir: dir}
	imageID, _, err := osReleaseValue(d.OSRelease(), "IMAGE_ID")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return AssetName{}, err
	}
	infoName, err := buildInfoName(d.BuildInfo())
	if err != nil {
		return AssetName{}, err
	}
	var n AssetName
	switch {
	case infoName != "":
		if imageID != "" && imageID != infoName {
			return AssetName{}, fmt.Errorf("%s: %s names the system %q but %s has IMAGE_ID=%s: devices report the first, meta-nexigon's scripts publish under the second; make them equal in the image", dir, buildInfoFile, infoName, osReleaseFile, imageID)
		}
		n = AssetName{Name: infoName, Source: buildInfoFile}
	case imageID != "":
		n = AssetName{Name: imageID, Source: osReleaseFile + " IMAGE_ID"}
	default:
		n = AssetName{Name: sys.Yocto.Machine, Source: "machine (no IMAGE_ID)"}
	}
	if want := sys.Yocto.ImageID; want != "" && want != n.Name {
		return AssetName{}, fmt.Errorf("systems.%s.yocto.image_id is %q but the build in %s reports %q (%s): devices of this image look for %s.rugixb; fix IMAGE_ID in the image or image_id in otabake.toml", system, want, dir, n.Name, n.Source, n.Name)
	}
	if err := checkAssetBase(n.Name); err != nil {
		return AssetName{}, fmt.Errorf("%s: %s %q: %w", dir, n.Source, n.Name, err)
	}
	return n, nil
}

// buildInfoName returns the "name" of a system-build-info.json, or "" when there is none.
func buildInfoName(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var bi struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(data, &bi); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return bi.Name, nil
}

// checkAssetBase refuses a name that cannot be the first part of a filename: an IMAGE_ID comes
// from a build, not from the user, and ends up in Hub filenames and device lookups. The Hub's
// filename rules apply (hub.ValidFilename), and a base is one path component.
func checkAssetBase(name string) error {
	if strings.Contains(name, "/") || len(name) > 128 {
		return fmt.Errorf("not usable as an asset name (one path component of 1 to 128 characters)")
	}
	if err := hub.ValidFilename(name); err != nil {
		return fmt.Errorf("not usable as an asset name: %w", err)
	}
	return nil
}
