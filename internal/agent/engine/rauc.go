package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Rauc drives rauc. RAUC has no boot groups; the agent's groups are the bootnames of the
// booted slot and of the primary slot. A booted slot whose boot status is not "good" is on
// trial: the bootloader falls back unless `rauc status mark-good` confirms it.
type Rauc struct {
	run Runner
}

// Name implements Engine.
func (r *Rauc) Name() string { return "rauc" }

// BundleSuffix implements Engine.
func (r *Rauc) BundleSuffix() string { return ".raucb" }

// raucStatus is the part of `rauc status --output-format=json` the agent reads.
type raucStatus struct {
	Compatible  string                      `json:"compatible"`
	Booted      string                      `json:"booted"`
	BootPrimary string                      `json:"boot_primary"`
	Slots       []map[string]raucSlotStatus `json:"slots"`
}

type raucSlotStatus struct {
	Class      string `json:"class"`
	State      string `json:"state"`
	Bootname   string `json:"bootname"`
	BootStatus string `json:"boot_status"`
	SlotStatus struct {
		Installed struct {
			Timestamp string `json:"timestamp"`
		} `json:"installed"`
	} `json:"slot_status"`
}

// ParseRaucStatus parses `rauc status --output-format=json` into a BootState.
func ParseRaucStatus(data []byte) (BootState, error) {
	var s raucStatus
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil {
		return BootState{}, fmt.Errorf("parse rauc status: %w", err)
	}
	if s.Booted == "" {
		return BootState{}, fmt.Errorf("parse rauc status: no booted slot (is the system booted by a RAUC-aware bootloader?)")
	}
	st := BootState{ActiveGroup: s.Booted}
	var booted *raucSlotStatus
	for _, m := range s.Slots {
		for name, slot := range m {
			if slot.Bootname == "" {
				continue
			}
			slot := slot
			if name == s.BootPrimary {
				st.DefaultGroup = slot.Bootname
			}
			if slot.Bootname == s.Booted || slot.State == "booted" {
				booted = &slot
			} else if st.SpareGroup == "" {
				st.SpareGroup = slot.Bootname
				if t, err := time.Parse(time.RFC3339, slot.SlotStatus.Installed.Timestamp); err == nil {
					st.SpareUpdatedAt = t
				}
			}
		}
	}
	if booted == nil {
		return BootState{}, fmt.Errorf("parse rauc status: booted slot %q not among the slots", s.Booted)
	}
	if st.DefaultGroup == "" {
		st.DefaultGroup = st.ActiveGroup
	}
	st.NeedsCommit = booted.BootStatus != "" && booted.BootStatus != "good"
	return st, nil
}

// BootState implements Engine.
func (r *Rauc) BootState(ctx context.Context) (BootState, error) {
	out, err := r.run(ctx, "rauc", "status", "--output-format=json", "--detailed")
	if err != nil {
		return BootState{}, fmt.Errorf("rauc status failed: %w", err)
	}
	return ParseRaucStatus(out)
}

// Commit implements Engine.
func (r *Rauc) Commit(ctx context.Context) error {
	if _, err := r.run(ctx, "rauc", "status", "mark-good"); err != nil {
		return fmt.Errorf("rauc status mark-good failed: %w", err)
	}
	return nil
}

// Install implements Engine. RAUC verifies bundles by signature only; a bundle hash is refused
// rather than silently ignored.
func (r *Rauc) Install(ctx context.Context, url string, opts InstallOptions) error {
	if opts.BundleHash != "" {
		return fmt.Errorf("rauc install: bundle hash verification is a Rugix feature; RAUC verifies signatures")
	}
	if err := CheckBundleURL(url, SourcePolicy{AllowHTTP: true}); err != nil {
		return fmt.Errorf("rauc install refused: %w", err)
	}
	if _, err := r.run(ctx, "rauc", raucInstallArgs(url)...); err != nil {
		return fmt.Errorf("rauc install failed: %w", err)
	}
	return nil
}

// raucInstallArgs is `install -- URL`. rauc parses its command line with GLib's GOption,
// which stops at "--" and removes it when nothing after it starts with '-' (a checked URL
// never does), so install_start still finds the bundle as its only argument; any option would
// have to come before "--".
func raucInstallArgs(url string) []string { return []string{"install", "--", url} }

// DescribeInstall implements Engine.
func (r *Rauc) DescribeInstall(_ context.Context, url string, _ InstallOptions) ([]string, error) {
	return append([]string{"rauc"}, raucInstallArgs(url)...), nil
}

// RebootSpare implements Engine: rauc install already made the new slot primary.
func (r *Rauc) RebootSpare(ctx context.Context) error {
	if _, err := r.run(ctx, "reboot"); err != nil {
		return fmt.Errorf("reboot failed: %w", err)
	}
	return nil
}

// RebootDefault implements Engine: an unconfirmed slot is not booted again by the bootloader.
func (r *Rauc) RebootDefault(ctx context.Context) error {
	return r.RebootSpare(ctx)
}
