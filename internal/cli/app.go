// Package cli builds the otabake command line. Commands parse flags, call the domain packages
// and print; the work itself lives elsewhere. Each command file registers its commands with
// register in an init function, so that command groups can be added without touching this file.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/logging"
	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// Version is the otabake version, set at link time with -ldflags "-X …/internal/cli.Version=…".
var Version = "dev"

var registered []func() *ucli.Command

// register adds constructors of top-level commands. It is called from init functions of the
// command files. Commands are built anew for every App because urfave/cli flags keep the
// values they parse (from the environment too): a shared flag would carry one run's values
// into the next run in the same process.
func register(newCmds ...func() *ucli.Command) { registered = append(registered, newCmds...) }

// Globals holds the options every command shares, resolved once before the command runs.
type Globals struct {
	// ProjectDir is the directory holding otabake.toml, .env and build/.
	ProjectDir string
	// JSON asks for one machine-readable JSON document on stdout instead of human output.
	JSON bool
	// Progress is true when progress bars may be drawn (stderr is a terminal and not disabled).
	Progress bool
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	Log      *slog.Logger
}

type globalsKey struct{}

// globals returns the shared options of the running command.
func globals(c *ucli.Context) *Globals {
	if g, ok := c.Context.Value(globalsKey{}).(*Globals); ok {
		return g
	}
	return &Globals{ProjectDir: ".", Stdout: c.App.Writer, Stderr: c.App.ErrWriter, Log: logging.Discard()}
}

// NewApp builds the otabake application with all registered commands. Main runs it on the
// command line reordered by reorderArgs, so that flags may follow arguments; app.Run alone
// takes flags only before the arguments, as urfave/cli does.
func NewApp(stdin io.Reader, stdout, stderr io.Writer) *ucli.App {
	cmds := make([]*ucli.Command, len(registered))
	for i, newCmd := range registered {
		cmds[i] = newCmd()
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	g := &Globals{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	app := &ucli.App{
		Name:    "otabake",
		Usage:   "build, sign and publish over-the-air system updates for embedded Linux fleets",
		Version: Version,
		Description: "otabake turns a root filesystem into a versioned release: disk images, Rugix update\n" +
			"bundles with their hash, signatures and SBOMs, uploaded to Nexigon Hub or to an embedded\n" +
			"local Hub under .otabake/hub/ when no Hub is configured.\n\n" +
			"The release pipeline is:\n" +
			"  otabake prepare-release            pin VERSION, create the Hub version, write .release-env\n" +
			"  otabake build-release SYSTEM...    build/<system>/: image, bundle, hash, SBOM, build info\n" +
			"  otabake upload-release             attach every artifact with its metadata\n" +
			"  otabake promote-release --tag stable",
		EnableBashCompletion: true,
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "project-dir", Aliases: []string{"C"}, Value: ".", EnvVars: []string{"OTABAKE_PROJECT_DIR"}, Usage: "project directory (holds otabake.toml, .env and build/)"},
			&ucli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout instead of human-readable output"},
			&ucli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"OTABAKE_LOG_LEVEL"}, Usage: "log level on stderr: debug, info, warn or error"},
			&ucli.BoolFlag{Name: "no-progress", EnvVars: []string{"OTABAKE_NO_PROGRESS"}, Usage: "never draw progress bars (they are drawn only when stderr is a terminal)"},
		},
		Before: func(c *ucli.Context) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
			}
			g.ProjectDir = c.String("project-dir")
			g.JSON = c.Bool("json")
			g.Progress = !c.Bool("no-progress") && !g.JSON && isTerminal(stderr)
			g.Log = slog.New(newLogHandler(stderr, lvl))
			c.Context = context.WithValue(c.Context, globalsKey{}, g)
			return nil
		},
		Commands: cmds,
		ExitErrHandler: func(*ucli.Context, error) {
			// Errors are printed once by Main.
		},
	}
	return app
}

// Main runs otabake with args and returns the process exit code. Errors are printed as one
// line "otabake: …" on stderr (or as {"error": …} on stdout with --json).
//
// SIGINT and SIGTERM cancel the command's context; every long operation watches it and removes
// its partial output on the way out, and the process exits with 128+signal. Should a command
// still be blocked after interruptGrace (a read that no context reaches), Main removes the
// temporary files of unfinished writes itself and exits: an interrupt ends otabake within a
// second and leaves nothing partial. A second signal skips the wait.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var caught atomic.Value // syscall.Signal
	done := make(chan struct{})
	go func() {
		var sig os.Signal
		select {
		case sig = <-sigs:
		case <-done:
			return
		}
		caught.Store(sig)
		cancel()
		select {
		case <-done:
			return
		case <-sigs:
		case <-time.After(interruptGrace):
		}
		n := atomicfile.RemovePending()
		fmt.Fprintf(stderr, "otabake: interrupted by %s; the command did not stop in %v, removed %d unfinished file(s)\n",
			signalName(sig), interruptGrace, n)
		os.Exit(exitCode(sig))
	}()
	app := NewApp(stdin, stdout, stderr)
	ordered, err := reorderArgs(app, args) // flags anywhere: see args.go
	if err == nil {
		args = ordered
		err = app.RunContext(ctx, args)
	}
	close(done)
	if sig, ok := caught.Load().(os.Signal); ok {
		// Whatever the command returned, it was cut short: say so once, with the signal's exit
		// status, so that scripts and CI see an interrupt rather than a failure.
		msg := "interrupted by " + signalName(sig) + "; nothing partial was left, re-run the command to go on"
		if hasFlag(args, "--json") {
			_ = json.NewEncoder(stdout).Encode(map[string]string{"error": msg})
		}
		fmt.Fprintf(stderr, "otabake: %s\n", msg)
		return exitCode(sig)
	}
	if err == nil {
		return 0
	}
	code := 1
	var ec ucli.ExitCoder
	if errors.As(err, &ec) {
		code = ec.ExitCode()
		if code == 0 {
			return 0
		}
	}
	if msg := strings.TrimSpace(err.Error()); msg != "" {
		if hasFlag(args, "--json") {
			_ = json.NewEncoder(stdout).Encode(map[string]string{"error": msg})
		}
		fmt.Fprintf(stderr, "otabake: %s\n", msg)
	}
	return code
}

// interruptGrace is how long an interrupted command has to return by itself.
const interruptGrace = 700 * time.Millisecond

// exitCode is the shell's status for a process ended by sig: 128 + the signal number.
func exitCode(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case os.Interrupt:
		return "SIGINT"
	}
	return sig.String()
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args[1:] {
		if a == "--" {
			return false
		}
		if a == flag || a == flag+"=true" {
			return true
		}
	}
	return false
}

// printJSON writes v as indented JSON followed by a newline.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether stream (stdin, stdout or stderr) is a terminal: where progress
// bars may be drawn, and where QEMU's multiplexed console with its Ctrl-A keys makes sense.
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// usageError marks a wrong invocation; it is printed with a hint to --help.
func usageError(c *ucli.Context, format string, args ...any) error {
	return fmt.Errorf("%s (see 'otabake %s --help')", fmt.Sprintf(format, args...), c.Command.FullName())
}
