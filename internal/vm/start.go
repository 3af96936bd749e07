package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Stdio connects QEMU's standard streams; nil ones are /dev/null, as with os/exec. An
// *os.File stdin (a terminal) is handed to QEMU as it is, so that -serial mon:stdio can put it
// in raw mode.
type Stdio struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// StartOptions tune Start.
type StartOptions struct {
	Stdio
	// KVMGrace is how long a KVM start chosen by AccelAuto is watched for an early failure
	// before it counts as running; 0 means DefaultKVMGrace.
	KVMGrace time.Duration
	// OnFallback is told, with QEMU's own words, why KVM was given up for software emulation.
	OnFallback func(reason string)
}

// DefaultKVMGrace is how long Start watches a KVM start: QEMU fails on a KVM it cannot use
// while it sets the virtual CPUs up, long before the firmware runs.
const DefaultKVMGrace = 3 * time.Second

// kvmErrorRE matches what QEMU prints when /dev/kvm opens but KVM cannot run the guest: QEMU
// 7.2 on AMD EPYC cloud VMs aborts with "error: failed to set MSR 0x10a to 0x…", others say
// "Could not access KVM kernel module" or "failed to initialize kvm". Warnings are not errors.
var kvmErrorRE = regexp.MustCompile(`(?i)failed to set MSR|could not access KVM|\bkvm\b`)

// Process is a QEMU started by Start.
type Process struct {
	// Accel is what QEMU runs with, after any fallback.
	Accel Accel
	// FallbackReason is why KVM was given up, "" when it was not.
	FallbackReason string

	cmd   *exec.Cmd
	done  chan struct{}
	err   error
	feed  func() // starts copying a non-file stdin into QEMU, once
	watch *stderrWatch
}

// Wait waits for QEMU to exit and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when QEMU has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Kill stops QEMU at once.
func (p *Process) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill QEMU: %w", err)
	}
	return nil
}

// Start starts QEMU for c. With AccelAuto on a host where /dev/kvm opens, it starts with KVM
// and watches the start for KVMGrace: when QEMU exits with an error or prints a KVM error in
// that time (a /dev/kvm that opens but cannot run the guest), it is stopped and started again
// with software emulation (TCG), and OnFallback is told why. An explicit AccelKVM never falls
// back. It creates c.VarsFile from the firmware template when it does not exist.
func (c Config) Start(ctx context.Context, opts StartOptions) (*Process, error) {
	accel := c.resolveAccel()
	if _, _, err := c.argsFor(accel); err != nil {
		return nil, err
	}
	if err := c.prepareVars(); err != nil {
		return nil, err
	}
	watchKVM := c.Accel == AccelAuto && accel == AccelKVM
	p, err := c.launch(ctx, accel, opts.Stdio)
	if err != nil || !watchKVM {
		if p != nil {
			p.feed()
		}
		return p, err
	}
	grace := opts.KVMGrace
	if grace <= 0 {
		grace = DefaultKVMGrace
	}
	reason := p.kvmFailure(grace)
	if reason == "" {
		p.feed()
		return p, nil
	}
	if err := p.Kill(); err != nil {
		return nil, err
	}
	<-p.done
	if opts.OnFallback != nil {
		opts.OnFallback(reason)
	}
	tcg, err := c.launch(ctx, AccelTCG, opts.Stdio)
	if err != nil {
		return nil, fmt.Errorf("start QEMU with software emulation after KVM failed (%s): %w", reason, err)
	}
	tcg.FallbackReason = reason
	tcg.feed()
	return tcg, nil
}

// launch starts QEMU with accel. Stdin that is not a file reaches QEMU through a pipe that is
// fed only once feed is called, so that a start given up does not swallow input.
func (c Config) launch(ctx context.Context, accel Accel, stdio Stdio) (*Process, error) {
	args, bin, err := c.argsFor(accel)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	// A child QEMU left behind holding stdout or stderr must not keep Wait from returning.
	cmd.WaitDelay = 5 * time.Second
	w := &stderrWatch{out: stdio.Stderr, kvm: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = stdio.Stdout, w
	p := &Process{Accel: accel, cmd: cmd, done: make(chan struct{}), watch: w, feed: func() {}}
	var pw *os.File
	switch in := stdio.Stdin.(type) {
	case nil:
	case *os.File:
		cmd.Stdin = in
	default:
		pr, pwr, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("QEMU stdin: %w", err)
		}
		cmd.Stdin, pw = pr, pwr
		defer pr.Close()
		var once sync.Once
		p.feed = func() {
			once.Do(func() {
				go func() {
					_, _ = io.Copy(pw, in)
					pw.Close()
				}()
			})
		}
	}
	if err := cmd.Start(); err != nil {
		if pw != nil {
			pw.Close()
		}
		return nil, fmt.Errorf("start QEMU: %w", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// kvmFailure watches a KVM start for grace and returns why it failed, or "".
func (p *Process) kvmFailure(grace time.Duration) string {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case line := <-p.watch.kvm:
		return "QEMU: " + line
	case <-p.done:
		// Wait returns after stderr was copied: everything QEMU said is in the watch.
		if p.err == nil {
			return "" // the guest ran and powered off
		}
		if line := p.watch.kvmLine(); line != "" {
			return "QEMU: " + line
		}
		if line := p.watch.lastLine(); line != "" {
			return fmt.Sprintf("QEMU exited right after starting with KVM (%v): %s", p.err, line)
		}
		return fmt.Sprintf("QEMU exited right after starting with KVM (%v)", p.err)
	case <-t.C:
		return ""
	}
}

// stderrWatch passes QEMU's stderr on and remembers its last line and its first KVM error.
type stderrWatch struct {
	out io.Writer
	kvm chan string

	mu      sync.Mutex
	partial []byte
	last    string
	kvmErr  string
}

func (w *stderrWatch) Write(b []byte) (int, error) {
	if w.out != nil {
		if _, err := w.out.Write(b); err != nil {
			return 0, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(strings.TrimSpace(string(w.partial[:i])))
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) > 4096 {
		w.line(strings.TrimSpace(string(w.partial)))
		w.partial = w.partial[:0]
	}
	return len(b), nil
}

func (w *stderrWatch) line(l string) {
	if l == "" {
		return
	}
	w.last = l
	if w.kvmErr == "" && kvmErrorRE.MatchString(l) && !strings.Contains(strings.ToLower(l), "warning") {
		w.kvmErr = l
		select {
		case w.kvm <- l:
		default:
		}
	}
}

func (w *stderrWatch) flush() {
	if len(w.partial) > 0 {
		w.line(strings.TrimSpace(string(w.partial)))
		w.partial = w.partial[:0]
	}
}

func (w *stderrWatch) kvmLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flush()
	return w.kvmErr
}

func (w *stderrWatch) lastLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flush()
	return w.last
}
