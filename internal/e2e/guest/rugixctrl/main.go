//go:build linux

// Command rugixctrl is a stand-in for Rugix Ctrl 1.x, installed as /usr/bin/rugix-ctrl in the
// guest of the QEMU end-to-end test, where the real one is not available offline. It implements
// the GRUB-EFI boot flow exactly as specs/rugix-images.md describes it and the commands
// otabake-agent runs (internal/agent/engine/rugix.go): as init it bootstraps the data partition
// and hands over to /sbin/init; as a command it reports, commits, installs bundles from a URL
// into the spare group and reboots.
//
// For host tests, RUGIX_STANDIN_DISK (a disk image), RUGIX_STANDIN_CONFIG (the config partition's
// files), RUGIX_STANDIN_DATA and RUGIX_STANDIN_CMDLINE replace the devices, and nothing is
// mounted or rebooted.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"golang.org/x/sys/unix"
)

// version is what --version prints: the stand-in enforces the rules of Rugix Ctrl 1.2 (mandatory
// verification from 1.0, block indices from 1.2), so agents pass it 1.x flags.
const version = "rugix-ctrl 1.2.0 (otabake stand-in)"

const usage = `usage: rugix-ctrl --version
       rugix-ctrl system info [--json]
       rugix-ctrl system commit
       rugix-ctrl system reboot [--spare]
       rugix-ctrl update install [--bundle-hash H] [--root-cert PEM] [--reboot yes|no|set]
                                 [--insecure-skip-bundle-verification]
                                 [--insecure-allow-missing-block-index]
                                 [--skip-compatibility-check] BUNDLE

Bundles must match --bundle-hash or carry a signature chaining to a root of --root-cert or of
[signatures] roots in /etc/rugix/ctrl.toml; every payload needs a block index.`

func main() {
	if os.Getpid() == 1 {
		initMain()
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses: 1 for a failed command, 2 for a command line the stand-in does not understand.
const (
	exitFailed = 1
	exitUsage  = 2
)

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	s := newSystem(getenv, stderr)
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "rugix-ctrl: "+format+"\n", a...)
		return exitUsage
	}
	fail := func(what string, err error) int {
		fmt.Fprintf(stderr, "rugix-ctrl: %s: %v\n", what, err)
		return exitFailed
	}
	cmd := strings.Join(args[:min(len(args), 2)], " ")
	// Rugix Ctrl loads its configuration before any command (rugix/rugix
	// crates/apps/rugix-ctrl/src/cli.rs, main); clap answers --version and --help before that.
	if len(args) != 1 || !strings.HasPrefix(args[0], "-") {
		cfg, err := loadCtrlConfig(s.ctrlPath)
		if err != nil {
			return fail("configuration", err)
		}
		s.ctrl = cfg
	}
	switch {
	case len(args) == 1 && (args[0] == "--version" || args[0] == "-V"):
		fmt.Fprintln(stdout, version)
		return 0
	case len(args) == 1 && (args[0] == "--help" || args[0] == "-h"):
		fmt.Fprintln(stdout, usage)
		return 0
	case cmd == "system info":
		compact := false
		for _, a := range args[2:] {
			if a != "--json" {
				return usageErr("system info: unknown argument %q", a)
			}
			compact = true
		}
		info, err := s.info()
		if err != nil {
			return fail("system info", err)
		}
		out, err := marshalInfo(info, compact)
		if err != nil {
			return fail("system info", err)
		}
		fmt.Fprintf(stdout, "%s\n", out)
		return 0
	case cmd == "system commit":
		if len(args) > 2 {
			return usageErr("system commit: unknown argument %q", args[2])
		}
		if err := s.commit(); err != nil {
			return fail("system commit", err)
		}
		return 0
	case cmd == "system reboot":
		spare := false
		for _, a := range args[2:] {
			if a != "--spare" {
				return usageErr("system reboot: unknown argument %q", a)
			}
			spare = true
		}
		if err := s.reboot(spare); err != nil {
			return fail("system reboot", err)
		}
		return 0
	case cmd == "update install":
		o, err := parseInstallArgs(args[2:])
		if err != nil {
			return usageErr("update install: %v", err)
		}
		reboot, err := s.install(ctx, o)
		if err != nil {
			fmt.Fprintf(stderr, "rugix-ctrl: install refused: %v\n", err)
			return exitFailed
		}
		switch reboot {
		case "yes":
			if err := s.reboot(true); err != nil {
				return fail("update install: reboot", err)
			}
		case "set":
			if err := s.withConfigRW(func() error { return writeSpareFlag(s.configDir, true) }); err != nil {
				return fail("update install: set spare boot", err)
			}
		}
		return 0
	}
	return usageErr("unknown command %q (the otabake stand-in knows: --version, system info|commit|reboot, update install)", strings.Join(args, " "))
}

// parseInstallArgs reads the flags of `update install`, which may come before or after the
// bundle, as with clap; after "--" every argument is positional (otabake-agent puts the URL
// there).
func parseInstallArgs(args []string) (installOptions, error) {
	var o installOptions
	positional := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" && !positional {
			positional = true
			continue
		}
		if positional || !strings.HasPrefix(a, "--") {
			if o.Source != "" {
				return o, fmt.Errorf("two bundles given: %q and %q", o.Source, a)
			}
			o.Source = a
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		value := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value", name)
			}
			i++
			return args[i], nil
		}
		var err error
		switch name {
		case "--bundle-hash":
			o.BundleHash, err = value()
		case "--root-cert":
			o.RootCert, err = value()
		case "--insecure-allow-missing-block-index":
			o.AllowMissingBlockIndex = true
		case "--skip-compatibility-check":
			o.SkipCompatibilityCheck = true
		case "--reboot":
			o.Reboot, err = value()
		case "--insecure-skip-bundle-verification":
			o.SkipVerification = true
		default:
			return o, fmt.Errorf("unknown flag %s", name)
		}
		if err != nil {
			return o, err
		}
	}
	if o.Source == "" {
		return o, fmt.Errorf("no bundle given")
	}
	return o, nil
}
