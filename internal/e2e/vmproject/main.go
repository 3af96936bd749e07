//go:build linux

// Command vmproject writes the otabake project of the README's "Try an update in a VM": one
// efi-grub system with a small real guest (Debian's kernel, busybox, otabake-agent and a
// rugix-ctrl stand-in) whose agent talks to `otabake hub serve` on the host.
//
//	go run ./internal/e2e/vmproject -o /tmp/vm-demo [-port 8470]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/otabake/otabake/internal/e2e/vmkit"
)

func main() {
	out := flag.String("o", "", "project `DIR` to create (must not exist or be empty)")
	port := flag.Int("port", 8470, "port of `otabake hub serve` on the host")
	realCtrl := flag.String("rugix-ctrl", "", "a real rugix-ctrl `BINARY` to install instead of the stand-in (its shared libraries are copied too)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: go run ./internal/e2e/vmproject -o DIR [-port 8470]\n\n"+
			"Writes an otabake project with one efi-grub system, \"vm\", that boots in QEMU and updates\n"+
			"itself from `otabake hub serve` on the host. Its bundles are signed by a development-only test CA\n"+
			"in keys/, which the image trusts. Needs apt-get (Debian's kernel is downloaded\n"+
			"once into .otabake/cache/kernel of this repository) and busybox-static.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*out, *port, *realCtrl); err != nil {
		fmt.Fprintln(os.Stderr, "vmproject:", err)
		os.Exit(1)
	}
}

func run(dir string, port int, realCtrl string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return fmt.Errorf("go list -m (run this from otabake's source tree): %w", err)
	}
	moduleDir := strings.TrimSpace(string(root))
	tok := make([]byte, 16)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	if _, err := vmkit.WriteProject(ctx, dir, vmkit.ProjectOptions{
		ModuleDir: moduleDir, CacheDir: filepath.Join(moduleDir, ".otabake", "cache", "kernel"),
		HubPort: port, HubToken: token, DeviceID: "vm-1", Repository: "vm-demo", Package: "system",
		SigningCA: "vm-demo", RugixCtrl: realCtrl,
	}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ".hub-token"), []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".gitignore"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("/.hub-token\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=otabake", "-c", "user.email=otabake@localhost", "commit", "-qm", "VM demo project"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", args[0], err, b)
		}
	}
	fmt.Printf("wrote %s: system \"vm\", guest agent talks to http://%s:%d (the host), device vm-1\n", dir, vmkit.HostAddr, port)
	return nil
}
