// Package engine drives the update tool of a device: Rugix Ctrl or RAUC. Each engine is one
// small runner around the tool's command line; errors quote the tool's stderr, because on a
// device that is usually the only diagnosis an operator gets to see in the Hub.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/tool"
)

// BootState is what the agent needs to know about the running boot: which group (or slot) is
// running, which one the bootloader boots by default, and whether the running one still needs
// to be committed (confirmed) to stay.
type BootState struct {
	// ActiveGroup is the running boot group ("a", "b" for Rugix; the bootname for RAUC).
	ActiveGroup string `json:"activeGroup"`
	// DefaultGroup is the group booted when nothing else is requested.
	DefaultGroup string `json:"defaultGroup"`
	// SpareGroup is the group an update is installed into.
	SpareGroup string `json:"spareGroup,omitempty"`
	// NeedsCommit is true when the running group is on trial and reverts on the next reboot.
	NeedsCommit bool `json:"needsCommit"`
	// SpareUpdatedAt is when the update tool last finished writing the spare group, if it
	// records that (Rugix slot DB, RAUC slot status). Zero when unknown. The agent uses it to
	// notice, after a crash, that an install completed without having been told so.
	SpareUpdatedAt time.Time `json:"spareUpdatedAt,omitzero"`
}

// InstallOptions are the verification inputs of an install.
type InstallOptions struct {
	// BundleHash is the expected bundle hash (sha512-256:<hex>); empty means the tool's
	// default verification (signatures).
	BundleHash string
}

// Engine is one update tool.
type Engine interface {
	// Name is "rugix" or "rauc".
	Name() string
	// BundleSuffix is the asset filename suffix of the engine's bundles (".rugixb", ".raucb").
	BundleSuffix() string
	// BootState reports the running boot.
	BootState(ctx context.Context) (BootState, error)
	// Commit confirms the running boot group.
	Commit(ctx context.Context) error
	// Install writes the bundle at url into the spare group without rebooting.
	Install(ctx context.Context, url string, opts InstallOptions) error
	// RebootSpare reboots into the freshly installed spare group (once, on trial).
	RebootSpare(ctx context.Context) error
	// RebootDefault reboots into the default group; for an uncommitted boot that is a rollback.
	RebootDefault(ctx context.Context) error
	// Describe returns the command lines Install would run, for dry runs.
	DescribeInstall(ctx context.Context, url string, opts InstallOptions) ([]string, error)
}

// Runner executes a tool. Tests and dry runs replace it; the default is exec.
type Runner func(ctx context.Context, name string, args ...string) (stdout []byte, err error)

// Exec runs name with args, capturing stdout, and returns an error quoting stderr.
func Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	res, err := tool.Run(ctx, tool.Cmd{Path: name, Package: debianPackage(name), Args: args, MaxStdout: 16 << 20, MaxStderr: 8 << 10})
	var te *tool.Error
	if errors.As(err, &te) {
		line := name + " " + Redact(strings.Join(args, " "))
		msg := Redact(strings.TrimSpace(plainText(te.Stderr)))
		if msg == "" {
			return res.Stdout, fmt.Errorf("%s: %w", line, te.Err)
		}
		return res.Stdout, fmt.Errorf("%s: %w: %s", line, te.Err, lastLines(msg, 5))
	}
	// Beyond 16 MiB stdout is cut, never an error: an install that succeeded stays a success,
	// and a cut JSON answer fails where it is parsed.
	return res.Stdout, err
}

var urlQueryRE = regexp.MustCompile(`(https?://[^\s?"']+)\?[^\s"']*`)

// Redact removes the query of every URL in s: download URLs are presigned, and their
// signatures must not end up in logs, errors or the published status.
func Redact(s string) string {
	return urlQueryRE.ReplaceAllString(s, "$1?<redacted>")
}

func debianPackage(tool string) string {
	switch tool {
	case "rauc":
		return "rauc"
	case "rugix-ctrl":
		return "rugix-ctrl (from the Rugix releases)"
	case "reboot":
		return "systemd-sysv"
	}
	return tool
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]`)

// plainText turns a tool's terminal output into plain lines for an error that is logged and
// published in the device's status: real rugix-ctrl draws progress with "\r" and ANSI erase
// sequences even when stderr is a pipe. Escape sequences are dropped, "\r" ends a line, and
// any other control character is removed.
func plainText(s string) string {
	s = ansiRE.ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\r':
			return '\n'
		case r == '\n' || r == '\t':
			return r
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
			return -1
		}
		return r
	}, s)
}

func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// ErrUnknownEngine is returned by New for an engine name it does not know.
var ErrUnknownEngine = errors.New("unknown engine")

// New returns the engine called name ("rugix" or "rauc"); run may be nil for Exec.
func New(name string, run Runner) (Engine, error) {
	if run == nil {
		run = Exec
	}
	switch name {
	case "rugix":
		return &Rugix{run: run}, nil
	case "rauc":
		return &Rauc{run: run}, nil
	}
	return nil, fmt.Errorf("%w %q: want rugix or rauc", ErrUnknownEngine, name)
}

// Detect picks the engine whose tool is on PATH, preferring Rugix.
func Detect() (string, error) {
	if _, err := exec.LookPath("rugix-ctrl"); err == nil {
		return "rugix", nil
	}
	if _, err := exec.LookPath("rauc"); err == nil {
		return "rauc", nil
	}
	return "", errors.New("no update engine found: neither rugix-ctrl nor rauc is on PATH (set engine in agent.toml)")
}
