package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SessionOptions describe one interactive boot of a disk image, as `otabake run` does it.
type SessionOptions struct {
	// Image is the disk image to boot. Its machine state, the UEFI variable store, is kept in
	// RunDir(Image), so that boot entries persist from run to run.
	Image string
	// Arch is amd64 or arm64 (the guest architecture).
	Arch string
	// MemoryMiB, CPUs, SSHPort, Accel and Interactive are as in Config.
	MemoryMiB, CPUs, SSHPort int
	Accel                    Accel
	Interactive              bool
	// Snapshot boots a throwaway sparse copy of Image, made in RunDir(Image) and removed by
	// Session.Close, with its own variable store: Image stays unchanged.
	Snapshot bool
	// Spare arms the GRUB boot-spare flag first (see ArmSpareBoot), on the copy with Snapshot.
	Spare bool
}

// ParseAccel parses how QEMU is to run the guest: auto, kvm or tcg.
func ParseAccel(s string) (Accel, error) {
	switch a := Accel(s); a {
	case "auto":
		return AccelAuto, nil
	case AccelKVM, AccelTCG:
		return a, nil
	}
	return AccelAuto, fmt.Errorf("%q: want auto, kvm or tcg", s)
}

// ErrNoKVM says that KVM was asked for on a host where /dev/kvm cannot be used.
var ErrNoKVM = errors.New("/dev/kvm is missing or not writable")

// DiskError says that the disk image to boot cannot be used, for example because it is not
// built yet.
type DiskError struct {
	Path string
	Err  error
}

func (e *DiskError) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *DiskError) Unwrap() error { return e.Err }

// Machine returns the QEMU machine that boots o.Image in place. It fails, wrapping ErrNoKVM,
// when KVM is asked for and /dev/kvm is not usable, and with a *DiskError when the image
// cannot be found.
func (o SessionOptions) Machine() (Config, error) {
	if o.Accel == AccelKVM && !kvmUsable() {
		return Config{}, fmt.Errorf("%w (load kvm_intel/kvm_amd, or add yourself to the kvm group)", ErrNoKVM)
	}
	if _, err := os.Stat(o.Image); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return Config{}, &DiskError{Path: o.Image, Err: err}
	}
	return Config{
		Disk: o.Image, Arch: o.Arch, MemoryMiB: o.MemoryMiB, CPUs: o.CPUs, SSHPort: o.SSHPort, Accel: o.Accel,
		VarsFile: filepath.Join(RunDir(o.Image), "OVMF_VARS.fd"), Interactive: o.Interactive,
	}, nil
}

// CommandLine is the QEMU command a session starts with.
type CommandLine struct {
	Args []string `json:"args"`
	// KVM is true when QEMU starts with KVM (it may still fall back with AccelAuto).
	KVM  bool   `json:"kvm"`
	QEMU string `json:"qemu"`
}

// String is the command line as one line of words.
func (l *CommandLine) String() string { return l.QEMU + " " + strings.Join(l.Args, " ") }

// CommandLine returns the QEMU command that boots o.Image, without preparing anything.
func (o SessionOptions) CommandLine() (*CommandLine, error) {
	c, err := o.Machine()
	if err != nil {
		return nil, err
	}
	args, qemu, err := c.Args()
	if err != nil {
		return nil, err
	}
	return &CommandLine{Args: args, KVM: c.startsWithKVM(), QEMU: qemu}, nil
}

// startsWithKVM reports whether c starts QEMU with KVM: AccelKVM, or AccelAuto on a host where
// /dev/kvm opens.
func (c Config) startsWithKVM() bool { return c.resolveAccel() == AccelKVM }

// Session is a boot prepared by NewSession: the disk (Image or its snapshot copy) ready, the
// spare boot armed if asked for.
type Session struct {
	// Machine is the QEMU machine; with Snapshot its Disk and VarsFile are in the copy's
	// directory.
	Machine Config
	// Image is the disk image asked for (not its copy).
	Image string

	tmp string // the snapshot copy's directory, "" without Snapshot
}

// NewSession prepares booting o.Image: it checks the host and the image (see Machine), makes
// the snapshot copy and arms the spare boot as o asks. Close removes what it made.
func NewSession(o SessionOptions) (*Session, error) {
	c, err := o.Machine()
	if err != nil {
		return nil, err
	}
	s := &Session{Machine: c, Image: o.Image}
	if err := s.prepare(o); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Session) prepare(o SessionOptions) error {
	if o.Snapshot {
		if err := os.MkdirAll(RunDir(o.Image), 0o755); err != nil {
			return err
		}
		tmp, err := os.MkdirTemp(RunDir(o.Image), "snapshot-")
		if err != nil {
			return err
		}
		s.tmp = tmp
		s.Machine.Disk = filepath.Join(tmp, "system.img")
		s.Machine.VarsFile = filepath.Join(tmp, "OVMF_VARS.fd")
		if err := CopySparse(o.Image, s.Machine.Disk); err != nil {
			return fmt.Errorf("snapshot copy: %w", err)
		}
	}
	if o.Spare {
		return ArmSpareBoot(s.Machine.Disk)
	}
	return nil
}

// KVM reports whether the session starts QEMU with KVM; with AccelAuto, Run may still fall
// back to software emulation (StartOptions.OnFallback is told).
func (s *Session) KVM() bool { return s.Machine.startsWithKVM() }

// Run boots the machine (see Config.Start) and waits until QEMU exits; a QEMU that exits with
// an error status is an error.
func (s *Session) Run(ctx context.Context, opts StartOptions) error {
	p, err := s.Machine.Start(ctx, opts)
	if err != nil {
		return err
	}
	if err := p.Wait(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("QEMU exited with status %d", exit.ExitCode())
		}
		return fmt.Errorf("QEMU: %w", err)
	}
	return nil
}

// Close removes the snapshot copy, if any.
func (s *Session) Close() error {
	if s.tmp == "" {
		return nil
	}
	return os.RemoveAll(s.tmp)
}
