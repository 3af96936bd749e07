package tool

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	ctx := context.Background()
	res, err := Run(ctx, Cmd{Path: "sh", Package: "dash", Args: []string{"-c", `printf out; printf err >&2; printf "$X" >&2`}, Env: []string{"X=x1"}})
	if err != nil || string(res.Stdout) != "out" || string(res.Stderr) != "errx1" {
		t.Fatalf("Run = %q %q %v", res.Stdout, res.Stderr, err)
	}

	_, err = Run(ctx, Cmd{Path: "sh", Args: []string{"-c", "echo first >&2; echo 'the reason' >&2; exit 3"}})
	var te *Error
	if !errors.As(err, &te) || te.ExitCode != 3 || !strings.Contains(err.Error(), "the reason") || !strings.HasPrefix(err.Error(), "sh: exit status 3") {
		t.Fatalf("err = %v", err)
	}

	if _, err := Run(ctx, Cmd{Path: "otabake-no-such-tool", Package: "otabake-pkg"}); err == nil || !strings.Contains(err.Error(), "install the Debian package otabake-pkg") {
		t.Fatalf("missing tool: %v", err)
	}

	// Bounded: a chatty program cannot grow memory.
	res, err = Run(ctx, Cmd{Path: "sh", Args: []string{"-c", "yes | head -c 3000000; yes e | head -c 300000 >&2"}, MaxStdout: 1000, MaxStderr: 100})
	if err != nil || len(res.Stdout) != 1000 || !res.StdoutOverflowed || len(res.Stderr) != 100 {
		t.Fatalf("bounded: %d %v %d %v", len(res.Stdout), res.StdoutOverflowed, len(res.Stderr), err)
	}

	// Output to a writer, stdin, dir.
	var w bytes.Buffer
	if _, err := Run(ctx, Cmd{Path: "sh", Args: []string{"-c", "cat; pwd"}, Stdin: strings.NewReader("in\n"), Dir: "/", Stdout: &w}); err != nil || w.String() != "in\n/\n" {
		t.Fatalf("writer: %q %v", w.String(), err)
	}

	// Cancellation is the error.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := Run(cctx, Cmd{Path: "sleep", Args: []string{"10"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestEnviron(t *testing.T) {
	t.Setenv("OTABAKE_TOOL_TEST", "old")
	t.Setenv("OTABAKE_TOOL_GONE", "x")
	env := Environ([]string{"OTABAKE_TOOL_TEST=new", "OTABAKE_TOOL_GONE"})
	for _, e := range env {
		if strings.HasPrefix(e, "OTABAKE_TOOL_GONE") {
			t.Errorf("bare key not removed: %s", e)
		}
	}
	n := 0
	for _, e := range env {
		if strings.HasPrefix(e, "OTABAKE_TOOL_TEST=") {
			n++
			if e != "OTABAKE_TOOL_TEST=new" {
				t.Errorf("kept %s", e)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d OTABAKE_TOOL_TEST entries", n)
	}
	if Environ(nil) != nil {
		t.Error("Environ(nil) is not the inherited environment")
	}
}
