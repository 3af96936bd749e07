// Command rugixctrl is a rugix-ctrl simulator for otabake-agent's tests: boot groups a/b with
// a default and an active group, spare reboots, commits with pre-commit hooks, and update
// install that really reads and verifies the bundle with otabake's reader. State lives in the
// file named by $OTABAKE_SIM_STATE; hooks and identity files under $OTABAKE_SIM_ROOT.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/agent/internal/sim"
)

func main() {
	sim.Main("Error: ", func(d *sim.Device) (bool, error) {
		return run(d, os.Getenv(sim.RootEnv), os.Args[1:])
	})
}

// run runs the command on d and reports whether d is to be saved.
func run(d *sim.Device, root string, args []string) (bool, error) {
	cmd := strings.Join(args[:min(2, len(args))], " ")
	switch {
	case len(args) == 1 && args[0] == "--version":
		fmt.Printf("rugix-ctrl %s\n", d.ToolVersion)
		return false, nil
	case cmd == "system info":
		return false, systemInfo(d)
	case cmd == "system commit":
		if err := commit(d, root); err != nil {
			return false, err
		}
	case cmd == "system reboot":
		spare := len(args) > 2 && args[2] == "--spare"
		if spare {
			d.TryNext = d.Spare()
			d.Reboots = append(d.Reboots, "spare")
		} else {
			d.Reboots = append(d.Reboots, "default")
		}
		d.RebootPending = true
	case cmd == "update install":
		d.InstallAttempts++
		if err := install(d, args[2:]); err != nil {
			return true, err
		}
	default:
		return false, fmt.Errorf("unsupported command %q", strings.Join(args, " "))
	}
	return true, nil
}

func systemInfo(d *sim.Device) error {
	slots := map[string]any{}
	for name, g := range d.Groups {
		s := map[string]any{"active": name == d.Active}
		if !g.UpdatedAt.IsZero() {
			s["updatedAt"] = g.UpdatedAt.UTC().Format(time.RFC3339Nano)
			s["hashes"] = map[string]string{"sha512_256": "sha512-256:00"}
		}
		slots["system-"+name] = s
		slots["boot-"+name] = map[string]any{"active": name == d.Active}
	}
	groups := map[string]any{}
	for name := range d.Groups {
		groups[name] = map[string]any{}
	}
	out := map[string]any{
		"slots": slots,
		"boot":  map[string]any{"bootFlow": "grub", "activeGroup": d.Active, "defaultGroup": d.Default, "groups": groups},
		"state": map[string]any{"status": "Active", "dataPartition": "/dev/sda7"},
	}
	fmt.Fprintln(os.Stderr, "Boot Flow: grub")
	return json.NewEncoder(os.Stdout).Encode(out)
}

func commit(d *sim.Device, root string) error {
	if d.Active == d.Default {
		fmt.Fprintln(os.Stderr, "Active boot group is already the default!")
		return nil
	}
	dir := filepath.Join(root, "etc/rugix/hooks/system-commit/pre-commit")
	entries, _ := os.ReadDir(dir)
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		c := exec.Command(filepath.Join(dir, e.Name()), "system-commit", "pre-commit")
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Run(); err != nil {
			return fmt.Errorf("hook system-commit/pre-commit/%s failed: %v", e.Name(), err)
		}
	}
	d.Default = d.Active
	d.Commits++
	return nil
}

func install(d *sim.Device, args []string) error {
	if d.Active != d.Default {
		return fmt.Errorf("System needs to be committed before installing an update.")
	}
	v1 := !strings.HasPrefix(d.ToolVersion, "0.")
	var hash, src string
	positional := false // after "--", as clap parses it, everything is the bundle
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case positional:
			if src != "" {
				return fmt.Errorf("unexpected argument '%s' found", a)
			}
			src = a
		case a == "--":
			positional = true
		case a == "--bundle-hash" && v1, a == "--verify-bundle" && !v1:
			i++
			if i == len(args) {
				return fmt.Errorf("%s needs a value", a)
			}
			hash = args[i]
		case a == "--reboot":
			i++
			if i == len(args) || args[i] != "no" {
				return fmt.Errorf("simulator supports only --reboot no")
			}
		case strings.HasPrefix(a, "-"):
			return fmt.Errorf("unexpected argument '%s' found", a)
		default:
			src = a
		}
	}
	if src == "" {
		return fmt.Errorf("missing bundle")
	}
	d.InstallArgs = append(d.InstallArgs, args)
	got, err := sim.FetchAndVerify(context.Background(), src, hash)
	if err != nil {
		return err
	}
	if _, err := d.Install(got); err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	return nil
}
