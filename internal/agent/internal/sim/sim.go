// Package sim is the shared state of the device simulators the agent's tests run as
// subprocesses: a rugix-ctrl and a rauc (with reboot) that keep their boot state in one JSON
// file named by $OTABAKE_SIM_STATE, under the device root $OTABAKE_SIM_ROOT. Tests "power
// cycle" the device with Boot.
package sim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/otabake/otabake/internal/atomicfile"
)

// Environment variables of the simulators.
const (
	StateEnv = "OTABAKE_SIM_STATE"
	RootEnv  = "OTABAKE_SIM_ROOT"
)

// Group is one boot group (Rugix) or slot (RAUC) and what is installed in it.
type Group struct {
	Version   string    `json:"version"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
	// Good is RAUC's boot status of the slot.
	Good bool `json:"good"`
}

// Device is the simulated device.
type Device struct {
	// System is the system name written to the build info / os-release.
	System string `json:"system"`
	// Engine is "rugix" or "rauc"; it decides which identity file Boot writes.
	Engine string `json:"engine"`
	// ToolVersion is what `rugix-ctrl --version` prints (e.g. "1.2.0" or "0.8.15").
	ToolVersion string `json:"toolVersion"`
	// Default and Active are boot groups; TryNext is a one-shot boot request.
	Default string            `json:"default"`
	Active  string            `json:"active"`
	TryNext string            `json:"tryNext,omitempty"`
	Groups  map[string]*Group `json:"groups"`
	// Bundles maps a bundle hash to the version its install puts into the spare group.
	Bundles map[string]string `json:"bundles"`
	// Counters the tests assert on.
	Installs        int        `json:"installs"`
	InstallAttempts int        `json:"installAttempts"`
	InstallArgs     [][]string `json:"installArgs,omitempty"`
	Commits         int        `json:"commits"`
	Reboots         []string   `json:"reboots,omitempty"`
	Boots           int        `json:"boots"`
	// RebootPending is set by a reboot command and cleared by Boot.
	RebootPending bool `json:"rebootPending"`
}

// GroupNames returns the names of the boot groups in order.
func (d *Device) GroupNames() []string {
	names := make([]string, 0, len(d.Groups))
	for g := range d.Groups {
		names = append(names, g)
	}
	sort.Strings(names)
	return names
}

// Spare returns the group an update goes into.
func (d *Device) Spare() string {
	for _, g := range d.GroupNames() {
		if g != d.Active {
			return g
		}
	}
	return ""
}

// Install puts the version registered for the bundle with hash into the spare group, and
// returns that group.
func (d *Device) Install(hash string) (string, error) {
	version, ok := d.Bundles[hash]
	if !ok {
		return "", fmt.Errorf("no version registered for bundle %s", hash)
	}
	spare := d.Spare()
	d.Groups[spare].Version = version
	d.Groups[spare].UpdatedAt = time.Now()
	d.Installs++
	return spare, nil
}

// Main is a simulator's main function: it runs cmd on the device state in $OTABAKE_SIM_STATE,
// locked against other simulator processes, and saves the state if cmd asks to, whether or
// not it failed (a failed install still counts as an attempt). An error is printed to stderr
// after prefix, and the process exits with status 1.
func Main(prefix string, cmd func(d *Device) (save bool, err error)) {
	if err := run(cmd); err != nil {
		fmt.Fprintf(os.Stderr, "%s%v\n", prefix, err)
		os.Exit(1)
	}
}

func run(cmd func(d *Device) (save bool, err error)) error {
	statePath := os.Getenv(StateEnv)
	if statePath == "" {
		return fmt.Errorf("%s not set", StateEnv)
	}
	d, unlock, err := Load(statePath)
	if err != nil {
		return err
	}
	defer unlock()
	save, err := cmd(d)
	if save {
		if serr := Save(statePath, d); err == nil {
			err = serr
		}
	}
	return err
}

// Load reads the device state, locking out concurrent simulator processes until Save.
func Load(path string) (*Device, func(), error) {
	lf, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, nil, err
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		lf.Close()
		return nil, nil, err
	}
	unlock := func() { lf.Close() }
	data, err := os.ReadFile(path)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	var d Device
	if err := json.Unmarshal(data, &d); err != nil {
		unlock()
		return nil, nil, fmt.Errorf("simulator state %s: %w", path, err)
	}
	return &d, unlock, nil
}

// Save writes the device state.
func Save(path string, d *Device) error {
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o644)
}

// Boot power-cycles the device: a pending one-shot request boots TryNext, anything else the
// default group (for RAUC: the primary slot). It writes the identity file of the booted
// version and a fresh kernel boot ID.
func Boot(root, statePath string) error {
	d, unlock, err := Load(statePath)
	if err != nil {
		return err
	}
	defer unlock()
	if d.TryNext != "" {
		d.Active, d.TryNext = d.TryNext, ""
	} else {
		d.Active = d.Default
	}
	d.RebootPending = false
	d.Boots++
	if err := WriteIdentity(root, d); err != nil {
		return err
	}
	return Save(statePath, d)
}

// WriteIdentity writes the running version's identity and a new boot ID under root.
func WriteIdentity(root string, d *Device) error {
	g := d.Groups[d.Active]
	if g == nil {
		return fmt.Errorf("boot group %q does not exist", d.Active)
	}
	write := func(p string, data []byte) error {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return atomicfile.WriteFile(p, data, 0o644)
	}
	if d.Engine == "rauc" {
		osr := fmt.Sprintf("ID=sim\nIMAGE_ID=%s\nIMAGE_VERSION=\"%s\"\n", d.System, g.Version)
		if err := write("/etc/os-release", []byte(osr)); err != nil {
			return err
		}
	} else {
		bi, _ := json.MarshalIndent(map[string]any{
			"name":    d.System,
			"release": map[string]string{"id": d.System + "@" + g.Version, "version": g.Version},
		}, "", "  ")
		if err := write("/etc/rugix/system-build-info.json", bi); err != nil {
			return err
		}
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	return write("/proc/sys/kernel/random/boot_id", []byte(hex.EncodeToString(id[:])+"\n"))
}
