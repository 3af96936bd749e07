// Package agentbuild cross-compiles otabake-agent: static, position-dependent binaries for
// the device architectures Rugix Bakery names, built reproducibly from go.agent.mod so that
// the same sources and version give the same bytes on every machine.
//
// One set of flags serves three users: the release artifacts (`otabake agent build`, `just
// agent-artifacts`), the local build the otabake-agent Bakery recipe can take instead of a
// download, and the tests that prove the agent still compiles with the Go of Yocto scarthgap.
package agentbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/tool"
)

// ModFile is the module file the agent is built with (see its header): go 1.22, only the
// modules the agent imports.
const ModFile = "go.agent.mod"

// Package is the agent's main package, relative to the module root.
const Package = "./cmd/otabake-agent"

// ChecksumsFile lists "<sha256>  <file>" for every artifact of a release, as sha256sum -c reads it.
const ChecksumsFile = "SHA256SUMS"

// VersionVar is the linker variable that holds the agent's version (otabake-agent --version).
const VersionVar = "github.com/otabake/otabake/internal/agent/agentcli.Version"

// Arch is a device architecture as Rugix Bakery names it (RUGIX_ARCH) and the Go target that
// runs there.
type Arch struct {
	Name   string
	GOARCH string
	// GOARM is the ARM architecture level; Go uses hardware floating point from 6 up.
	GOARM       string
	Description string
}

// Arches are the architectures otabake-agent is released for. Rugix's armhf is Raspberry Pi
// OS's ARMv6 hard-float (Pi Zero, Pi 1), not Debian's ARMv7 armhf: an ARMv7 build does not
// start there (rugix www/docs/bakery/index.md, "Architectures"). Rugix's "arm" (ARMv6
// soft-float, Debian armel) has no release.
var Arches = []Arch{
	{Name: "amd64", GOARCH: "amd64", Description: "64-bit x86"},
	{Name: "arm64", GOARCH: "arm64", Description: "64-bit ARMv8"},
	{Name: "armv7", GOARCH: "arm", GOARM: "7", Description: "32-bit ARMv7 hard-float"},
	{Name: "armhf", GOARCH: "arm", GOARM: "6", Description: "32-bit ARMv6 hard-float (Raspberry Pi Zero, 1)"},
}

// Lookup returns the architecture with the given Rugix name.
func Lookup(name string) (Arch, error) {
	for _, a := range Arches {
		if a.Name == name {
			return a, nil
		}
	}
	return Arch{}, fmt.Errorf("no otabake-agent build for architecture %q: want one of %s", name, strings.Join(Names(), ", "))
}

// Names lists the architectures' names in release order.
func Names() []string {
	var out []string
	for _, a := range Arches {
		out = append(out, a.Name)
	}
	return out
}

// FileName is the artifact's file name for an architecture: otabake-agent-<arch>.
func FileName(arch string) string { return "otabake-agent-" + arch }

// Options say what to build from and with.
type Options struct {
	// Source is the root of an otabake checkout (holds go.agent.mod).
	Source string
	// Version is linked into the binary; empty means "dev".
	Version string
	// Go is the go command; empty means "go" from PATH.
	Go string
	// Env is added to the build's environment last, e.g. GOTOOLCHAIN=go1.22.12.
	Env []string
}

// BuildArgs are the go command's arguments that build the agent into out. Everything that
// would make two builds differ is pinned: -trimpath drops paths, -buildvcs=false the checkout's
// state, -buildid= the linker's build ID (it is derived from the inputs anyway).
func BuildArgs(version, out string) []string {
	if version == "" {
		version = "dev"
	}
	return []string{"build", "-modfile=" + ModFile, "-trimpath", "-buildvcs=false",
		"-buildmode=exe", "-ldflags=-s -w -buildid= -X " + VersionVar + "=" + version,
		"-o", out, Package}
}

// BuildEnv is the environment of a build for arch: no cgo (static, any libc), the target,
// and nothing from the user's go env that changes the output (GOFLAGS, a go.work).
func BuildEnv(a Arch) []string {
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + a.GOARCH, "GOFLAGS=", "GOWORK=off"}
	if a.GOARM != "" {
		env = append(env, "GOARM="+a.GOARM)
	}
	return env
}

// Result is one built artifact.
type Result struct {
	Arch   string `json:"arch"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Written is false when the file already had these bytes and was left alone, so that
	// whatever depends on its modification time (a Bakery layer) does not rebuild.
	Written bool `json:"written"`
}

// Build compiles the agent for arch into path, replacing path only when the bytes differ,
// and checks the result (Check).
func Build(ctx context.Context, opts Options, a Arch, path string) (Result, error) {
	if _, err := os.Stat(filepath.Join(opts.Source, ModFile)); err != nil {
		return Result{}, fmt.Errorf("%s is not an otabake checkout (no %s): set OTABAKE_SOURCE_DIR or --source to one", opts.Source, ModFile)
	}
	absPath, err := filepath.Abs(path)
	if err != nil {
		return Result{}, err
	}
	dir := filepath.Dir(absPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(absPath)+".build-*")
	if err != nil {
		return Result{}, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	untrack := atomicfile.Track(tmp.Name())
	defer untrack()

	goCmd := opts.Go
	if goCmd == "" {
		goCmd = "go"
	}
	if _, err := tool.Run(ctx, tool.Cmd{Path: goCmd, Package: "golang", Args: BuildArgs(opts.Version, tmp.Name()), Dir: opts.Source,
		Env: append(BuildEnv(a), opts.Env...), MaxStderr: 4096}); err != nil {
		return Result{}, fmt.Errorf("build otabake-agent for %s in %s: %w", a.Name, opts.Source, err)
	}
	if err := Check(tmp.Name(), a); err != nil {
		return Result{}, err
	}
	sum, size, err := fileSHA256(tmp.Name())
	if err != nil {
		return Result{}, err
	}
	res := Result{Arch: a.Name, Path: path, SHA256: sum, Size: size}
	if old, _, err := fileSHA256(absPath); err == nil && old == sum {
		return res, nil
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	if _, err := atomicfile.WriteFrom(absPath, f, 0o755); err != nil {
		return Result{}, fmt.Errorf("write %s: %w", path, err)
	}
	res.Written = true
	return res, nil
}

// BuildAll builds every named architecture into dir as FileName(arch) (BuildEach) and writes
// ChecksumsFile for them (again only when its bytes change).
func BuildAll(ctx context.Context, opts Options, arches []string, dir string) ([]Result, error) {
	out, err := BuildEach(ctx, opts, arches, dir)
	if err != nil {
		return nil, err
	}
	if _, err := WriteChecksums(filepath.Join(dir, ChecksumsFile), out); err != nil {
		return nil, err
	}
	return out, nil
}

// BuildEach builds every named architecture into dir as FileName(arch), without a checksums
// file.
func BuildEach(ctx context.Context, opts Options, arches []string, dir string) ([]Result, error) {
	var out []Result
	for _, name := range arches {
		a, err := Lookup(name)
		if err != nil {
			return nil, err
		}
		r, err := Build(ctx, opts, a, filepath.Join(dir, FileName(name)))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// FormatChecksums renders results as sha256sum does, sorted by file name.
func FormatChecksums(results []Result) []byte {
	lines := make([]string, 0, len(results))
	for _, r := range results {
		lines = append(lines, r.SHA256+"  "+filepath.Base(r.Path)+"\n")
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	return []byte(strings.Join(lines, ""))
}

// WriteChecksums writes FormatChecksums(results) to path unless it already holds those bytes;
// it reports whether it wrote.
func WriteChecksums(path string, results []Result) (bool, error) {
	data := FormatChecksums(results)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

// ParseChecksums reads a sha256sum-style file: "<64 hex>  <name>" (or " *<name>") per line.
// It returns name → lowercase hex digest.
func ParseChecksums(data []byte) (map[string]string, error) {
	if len(data) > 1<<20 {
		return nil, errors.New("checksums file larger than 1 MiB")
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if len(line) < 67 || (line[64:66] != "  " && line[64:66] != " *") {
			return nil, fmt.Errorf("line %d: want \"<sha256>  <file>\"", i+1)
		}
		sum := strings.ToLower(line[:64])
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, fmt.Errorf("line %d: %q is not a hex SHA-256", i+1, line[:64])
		}
		name := line[66:]
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("line %d: %s listed twice", i+1, name)
		}
		out[name] = sum
	}
	return out, nil
}

func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
