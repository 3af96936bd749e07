package tool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Cmd is one run of an external program: the one way otabake and otabake-agent start the
// tools of the field (mkfs.ext4, debugfs, xz, grub-mkimage, git, run-bakery, rugix-ctrl, rauc,
// nexigon-agent).
type Cmd struct {
	// Path is the program: a path, or a name looked up with Find (sbin directories included),
	// whose absence is an error naming Package.
	Path    string
	Package string
	Args    []string
	// Dir is the working directory; "" is the current one.
	Dir string
	// Env changes the process environment: KEY=VALUE replaces the inherited KEY, a bare KEY
	// removes it.
	Env []string
	// Stdin is the program's standard input; nil is empty.
	Stdin io.Reader
	// Stdout and Stderr receive the program's output; nil captures it into the Result, bounded
	// by MaxStdout (head, default 1 MiB) and MaxStderr (tail, where errors are; default 64 KiB).
	Stdout, Stderr       io.Writer
	MaxStdout, MaxStderr int
}

// Result is what a run captured.
type Result struct {
	Stdout []byte
	Stderr []byte
	// StdoutOverflowed reports that the program wrote more than MaxStdout.
	StdoutOverflowed bool
}

// Error is a run that did not exit 0: its exit code (-1 when it did not start or was killed)
// and the tail of its captured standard error.
type Error struct {
	Name     string
	ExitCode int
	Stderr   string
	Err      error
}

func (e *Error) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("%s: %v", e.Name, e.Err)
	}
	msg := e.Stderr
	if len(msg) > 2000 {
		msg = "…" + msg[len(msg)-2000:]
	}
	return fmt.Sprintf("%s: %v: %s", e.Name, e.Err, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs c and waits for it. A cancelled ctx kills the program and is the error.
func Run(ctx context.Context, c Cmd) (Result, error) {
	path := c.Path
	if !strings.Contains(path, "/") {
		p, err := Find(path, c.Package)
		if err != nil {
			return Result{}, err
		}
		path = p
	}
	cmd := exec.CommandContext(ctx, path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = Environ(c.Env)
	cmd.Stdin = c.Stdin
	stdout := &Output{Max: orDefault(c.MaxStdout, 1<<20)}
	stderr := &Output{Max: orDefault(c.MaxStderr, 64<<10), Tail: true}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	}
	if c.Stderr != nil {
		cmd.Stderr = c.Stderr
	}
	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), StdoutOverflowed: stdout.Overflowed()}
	if err == nil {
		return res, nil
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	code := -1
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	name := c.Path
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return res, &Error{Name: name, ExitCode: code, Stderr: strings.TrimSpace(string(res.Stderr)), Err: err}
}

// Environ is the process environment changed by env: KEY=VALUE replaces the inherited value of
// KEY, a bare KEY removes it. A nil env is the process environment unchanged.
func Environ(env []string) []string {
	if len(env) == 0 {
		return nil // exec: the process environment
	}
	out := os.Environ()
	var set []string
	for _, kv := range env {
		k, _, isSet := strings.Cut(kv, "=")
		kept := out[:0]
		for _, e := range out {
			if !strings.HasPrefix(e, k+"=") {
				kept = append(kept, e)
			}
		}
		out = kept
		if isSet {
			set = append(set, kv)
		}
	}
	return append(out, set...)
}

func orDefault(n, d int) int {
	if n > 0 {
		return n
	}
	return d
}
