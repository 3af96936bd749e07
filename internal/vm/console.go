package vm

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Console is a guest's serial line driven by a program instead of a person: everything the
// guest prints is kept (and copied to a log), Expect waits for a pattern in what arrived since
// the last match, and Run executes a shell command and returns its output and exit status.
// It is what lets a test follow a machine across reboots on one serial line.
type Console struct {
	w   io.Writer
	log io.Writer

	mu     sync.Mutex
	buf    []byte
	pos    int           // start of the unread part of buf
	notify chan struct{} // closed and replaced whenever buf grows or the line closes
	eof    bool
	seq    int
}

// NewConsole reads the guest's output from r until EOF (QEMU exited) and writes input to w.
// Everything read is also written to log when it is not nil.
func NewConsole(r io.Reader, w io.Writer, log io.Writer) *Console {
	c := &Console{w: w, log: log, notify: make(chan struct{})}
	go c.pump(r)
	return c
}

func (c *Console) pump(r io.Reader) {
	b := make([]byte, 32<<10)
	for {
		n, err := r.Read(b)
		if n > 0 {
			c.mu.Lock()
			c.buf = append(c.buf, b[:n]...)
			if c.log != nil {
				_, _ = c.log.Write(b[:n])
			}
			close(c.notify)
			c.notify = make(chan struct{})
			c.mu.Unlock()
		}
		if err != nil {
			c.mu.Lock()
			c.eof = true
			close(c.notify)
			c.notify = make(chan struct{})
			c.mu.Unlock()
			return
		}
	}
}

// ErrConsoleClosed is returned by Expect when the guest's output ended (QEMU exited) before the
// pattern appeared.
var ErrConsoleClosed = fmt.Errorf("console closed (QEMU exited)")

// Expect waits until re matches the output that arrived after the previous match, returns the
// submatches and moves past the match. The error carries the last lines of output.
func (c *Console) Expect(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if loc := re.FindSubmatchIndex(c.buf[c.pos:]); loc != nil {
			m := make([]string, len(loc)/2)
			for i := range m {
				if loc[2*i] >= 0 {
					m[i] = string(c.buf[c.pos+loc[2*i] : c.pos+loc[2*i+1]])
				}
			}
			c.pos += loc[1]
			c.mu.Unlock()
			return m, nil
		}
		eof, wait := c.eof, c.notify
		c.mu.Unlock()
		if eof {
			return nil, fmt.Errorf("waiting for %q: %w; last output:\n%s", re, ErrConsoleClosed, c.Tail(20))
		}
		select {
		case <-wait:
		case <-deadline.C:
			return nil, fmt.Errorf("waiting for %q: no match after %s; last output:\n%s", re, timeout, c.Tail(20))
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %q: %w", re, ctx.Err())
		}
	}
}

// Send writes s to the guest's serial line.
func (c *Console) Send(s string) error {
	_, err := io.WriteString(c.w, s)
	return err
}

// Run types cmd into the guest's shell and waits for it to finish. It needs a shell on the
// serial line with echo off (`stty -echo`), so that only the command's output comes back;
// the end is found by a marker line carrying the exit status.
func (c *Console) Run(ctx context.Context, cmd string, timeout time.Duration) (output string, status int, err error) {
	c.mu.Lock()
	c.seq++
	id := c.seq
	start := len(c.buf)
	c.pos = max(c.pos, start)
	c.mu.Unlock()
	// The marker is split in the command so that an echoed command line cannot match it.
	if err := c.Send(fmt.Sprintf("%s; echo \"@@END\"\"-%d $?\"\n", cmd, id)); err != nil {
		return "", -1, err
	}
	re := regexp.MustCompile(`@@END-` + strconv.Itoa(id) + ` (\d+)\r?\n`)
	m, err := c.Expect(ctx, re, timeout)
	if err != nil {
		return "", -1, fmt.Errorf("guest command %q: %w", cmd, err)
	}
	status, _ = strconv.Atoi(m[1])
	c.mu.Lock()
	end := c.pos - len(m[0])
	out := string(c.buf[start:end])
	c.mu.Unlock()
	return cleanShellOutput(out), status, nil
}

// cleanShellOutput drops carriage returns and the shell prompts that precede output lines.
func cleanShellOutput(s string) string {
	s = strings.ReplaceAll(s, "\r", "")
	lines := strings.Split(s, "\n")
	out := lines[:0]
	for _, l := range lines {
		for strings.HasPrefix(l, "# ") {
			l = l[2:]
		}
		if l == "#" {
			continue
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

// Tail returns the last n lines of everything the guest printed.
func (c *Console) Tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return LastLines(string(c.buf), n)
}

// LastLines returns the last n lines of console output s, without carriage returns: the part
// of a serial log worth showing in an error.
func LastLines(s string, n int) string {
	s = strings.ReplaceAll(s, "\r", "")
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Output returns everything the guest printed so far.
func (c *Console) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}
