package project

import (
	"fmt"
)

// bakeryFile is the part of rugix-bakery.toml otabake reads (rugix-images.md §2.6, §10).
// Rugix Bakery ignores unknown keys, so otabake does too: the file belongs to Bakery.
type bakeryFile struct {
	Systems map[string]bakerySystem `toml:"systems"`
}

type bakerySystem struct {
	Layer        string `toml:"layer"`
	Architecture string `toml:"architecture"`
	Target       string `toml:"target"`
	Image        struct {
		Size string `toml:"size"`
	} `toml:"image"`
}

// bakeryTargets maps Rugix Bakery target names to otabake targets; "unknown" means none.
var bakeryTargets = map[string]string{
	"generic-grub-efi": TargetEFIGrub,
	"rpi-tryboot":      TargetRPiTryboot,
	"rpi-uboot":        TargetRPiUBoot,
	"unknown":          "",
	"":                 "",
}

// bakeryArchs maps Rugix Bakery architectures to Debian ones. Bakery's armv7 (Alpine's name)
// is the ARMv7 hard-float ABI Debian calls armhf; Bakery's "arm" (ARMv6, Raspberry Pi OS
// armhf userland on ARMv6 cores) has no otabake equivalent and maps to "", which only the
// native backend would reject.
var bakeryArchs = map[string]string{
	"amd64": ArchAMD64,
	"arm64": ArchARM64,
	"armhf": ArchARMHF,
	"armv7": ArchARMHF,
	"arm":   "",
}

// bakerySystems reads the [systems.NAME] tables of rugix-bakery.toml in file order.
func bakerySystems(name string, data []byte) ([]*System, error) {
	var f bakeryFile
	doc, err := decodeTOML(name, data, &f, false)
	if err != nil {
		return nil, err
	}
	var out []*System
	seen := map[string]bool{}
	for _, k := range doc.md.Keys() {
		if len(k) < 2 || k[0] != "systems" || seen[k[1]] {
			continue
		}
		sysName := k[1]
		seen[sysName] = true
		bs := f.Systems[sysName]
		loc := doc.where(k[:2]...)
		if err := validSystemName(sysName); err != nil {
			return nil, fmt.Errorf("%s: %w", loc, err)
		}
		s := &System{Name: sysName, Backend: BackendBakery, Source: loc,
			Bakery: Bakery{Layer: bs.Layer, Architecture: bs.Architecture, Target: bs.Target}}
		s.Bundle = defaultBundle()
		if bs.Layer == "" {
			return nil, fmt.Errorf("%s: systems.%s: missing layer (Rugix Bakery requires it)", loc, sysName)
		}
		t, ok := bakeryTargets[bs.Target]
		if !ok {
			return nil, fmt.Errorf("%s: systems.%s.target: unknown Rugix Bakery target %q; want generic-grub-efi, rpi-tryboot, rpi-uboot or unknown",
				doc.where("systems", sysName, "target"), sysName, bs.Target)
		}
		s.Target = t
		if bs.Architecture == "" {
			return nil, fmt.Errorf("%s: systems.%s: missing architecture (Rugix Bakery requires it)", loc, sysName)
		}
		a, ok := bakeryArchs[bs.Architecture]
		if !ok {
			return nil, fmt.Errorf("%s: systems.%s.architecture: unknown Rugix Bakery architecture %q; want amd64, arm64, armv7, armhf or arm",
				doc.where("systems", sysName, "architecture"), sysName, bs.Architecture)
		}
		s.Arch = a
		if bs.Image.Size != "" {
			n, err := ParseSize(bs.Image.Size)
			if err != nil {
				return nil, fmt.Errorf("%s: systems.%s.image.size: %w", doc.where("systems", sysName, "image", "size"), sysName, err)
			}
			s.Sizes.Total = n
		}
		out = append(out, s)
	}
	return out, nil
}

func defaultBundle() Bundle {
	return Bundle{Chunker: DefaultChunker, Hash: DefaultHash, Deduplicate: true, Compression: DefaultCompression, XZPreset: DefaultXZPreset}
}
