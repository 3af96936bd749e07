// Command rauc is a rauc simulator for otabake-agent's tests (also installed as "reboot"):
// status --output-format=json, install (verifying the bundle with otabake's reader, as the
// tests use Rugix bundles as stand-in payloads), status mark-good and reboot into the primary
// slot. State lives in the file named by $OTABAKE_SIM_STATE.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/agent/internal/sim"
)

func main() {
	sim.Main("rauc: ", func(d *sim.Device) (bool, error) {
		return run(d, filepath.Base(os.Args[0]), os.Args[1:])
	})
}

// run runs the command on d and reports whether d is to be saved.
func run(d *sim.Device, prog string, args []string) (bool, error) {
	if prog == "reboot" {
		// The bootloader boots the primary slot (Default) next.
		d.Reboots = append(d.Reboots, "reboot")
		d.RebootPending = true
		return true, nil
	}
	switch {
	case len(args) >= 2 && args[0] == "status" && args[1] == "mark-good":
		d.Groups[d.Active].Good = true
		d.Commits++
	case len(args) >= 1 && args[0] == "status":
		return false, status(d)
	case len(goptionArgs(args)) == 2 && args[0] == "install":
		d.InstallAttempts++
		hash, err := sim.FetchAndVerify(context.Background(), goptionArgs(args)[1], "")
		if err != nil {
			return true, fmt.Errorf("Failed to install bundle: %w", err)
		}
		spare, err := d.Install(hash)
		if err != nil {
			return false, err
		}
		d.Groups[spare].Good = true
		d.Default = spare // rauc marks the new slot primary
		d.InstallArgs = append(d.InstallArgs, args)
	default:
		return false, fmt.Errorf("unsupported command %q", strings.Join(args, " "))
	}
	return true, nil
}

func status(d *sim.Device) error {
	var slots []map[string]any
	primary := ""
	for i, g := range d.GroupNames() {
		name := fmt.Sprintf("rootfs.%d", i)
		if g == d.Default {
			primary = name
		}
		state := "inactive"
		if g == d.Active {
			state = "booted"
		}
		bs := "bad"
		if d.Groups[g].Good {
			bs = "good"
		}
		ss := map[string]any{"bundle": map[string]any{"version": d.Groups[g].Version}}
		if !d.Groups[g].UpdatedAt.IsZero() {
			ss["installed"] = map[string]any{"timestamp": d.Groups[g].UpdatedAt.UTC().Format(time.RFC3339), "count": 1}
		}
		slots = append(slots, map[string]any{name: map[string]any{
			"class": "rootfs", "device": "/dev/sda" + fmt.Sprint(i+2), "type": "ext4", "bootname": g,
			"state": state, "boot_status": bs, "slot_status": ss,
		}})
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"compatible": d.System, "variant": "", "booted": d.Active, "boot_primary": primary, "slots": slots,
	})
}

// goptionArgs removes the first "--" the way GLib's g_option_context_parse does when no
// argument after it starts with '-' (goption.c: the separator is kept otherwise), which is how
// rauc sees `rauc install -- URL`: as install URL.
func goptionArgs(args []string) []string {
	i := slicesIndex(args, "--")
	if i < 0 {
		return args
	}
	for _, a := range args[i+1:] {
		if strings.HasPrefix(a, "-") {
			return args
		}
	}
	return append(append([]string(nil), args[:i]...), args[i+1:]...)
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
