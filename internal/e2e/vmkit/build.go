//go:build linux

package vmkit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Guest program packages, relative to the module root. go build names each binary after the
// last path element.
const (
	AgentPackage     = "./cmd/otabake-agent"
	InitrdPackage    = "./internal/e2e/guest/initrd"
	RugixCtrlPackage = "./internal/e2e/guest/rugixctrl"
)

// BuildGuestBinaries cross-builds the three programs the guest runs (the agent, the initramfs
// /init and the rugix-ctrl stand-in) as static linux/amd64 binaries into outDir, in one go build
// so that they share the build cache work. moduleDir is the otabake module root; empty means the
// module the current directory belongs to (go list -m). Builds are reproducible: -trimpath, no
// VCS stamping, and stripped, which also keeps the initramfs small.
func BuildGuestBinaries(ctx context.Context, moduleDir, outDir string) (agent, initrd, rugixctrl string, err error) {
	if _, err := exec.LookPath("go"); err != nil {
		return "", "", "", fmt.Errorf("build guest binaries: go not found in PATH: %w", err)
	}
	if moduleDir == "" {
		out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
		if err != nil {
			return "", "", "", fmt.Errorf("build guest binaries: find the module root with go list -m: %w", err)
		}
		moduleDir = strings.TrimSpace(string(out))
	}
	if outDir, err = filepath.Abs(outDir); err != nil {
		return "", "", "", fmt.Errorf("build guest binaries: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", "", "", fmt.Errorf("build guest binaries: %w", err)
	}
	// No -tags kms: the stand-in verifies bundles through internal/sign, and the cloud KMS
	// providers would add 20 MB to the guest for nothing.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w",
		"-o", outDir+string(os.PathSeparator), AgentPackage, InitrdPackage, RugixCtrlPackage)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", "", "", fmt.Errorf("build guest binaries in %s: %w: %s", moduleDir, err, tail(out.Bytes()))
	}
	bin := func(pkg string) string { return filepath.Join(outDir, filepath.Base(pkg)) }
	return bin(AgentPackage), bin(InitrdPackage), bin(RugixCtrlPackage), nil
}
