package bake

import (
	"fmt"

	"github.com/otabake/otabake/internal/image"
)

// SystemConfig returns an explicit /etc/rugix/system.toml equal to the defaults Rugix Ctrl
// uses without one for target (rugix-images.md §6.1). Writing it pins the layout so that a
// future change of Ctrl's defaults or of its boot-flow detection cannot move the slots. The
// text comes from the image package, which lays out the partitions it describes.
func SystemConfig(target string) ([]byte, error) {
	s, err := image.CtrlSystemTOMLFor(target)
	if err != nil {
		return nil, fmt.Errorf("bake: %w", err)
	}
	return []byte(s), nil
}
