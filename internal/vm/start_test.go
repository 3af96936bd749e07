package vm

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeQEMU is a qemu-system-x86_64 that behaves like QEMU 7.2 on an AMD EPYC cloud VM with
// -accel kvm (or like another KVM failure), and like a guest that boots, echoes one line of
// its serial input and powers off otherwise.
const fakeQEMU = `#!/bin/sh
kvm=no
for a in "$@"; do
	case "$a" in kvm) kvm=yes ;; esac
done
if [ "$kvm" = yes ]; then
	case "$FAKE_KVM" in
	msr)
		echo "error: failed to set MSR 0x10a to 0x2000c6b" >&2
		echo "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3096: kvm_buf_set_msrs: Assertion 'ret == cpu->kvm_msr_buf->nmsrs' failed." >&2
		exit 134 ;;
	access)
		echo "Could not access KVM kernel module: Permission denied" >&2
		sleep 30 ;;
	exit)
		exit 1 ;;
	warn)
		echo "qemu-system-x86_64: warning: host doesn't support requested feature: kvm pv feature" >&2 ;;
	esac
fi
echo "booted with kvm=$kvm"
read line
echo "serial: $line"
`

func TestStartKVMFallback(t *testing.T) {
	dir := fakeHost(t)
	if err := os.WriteFile(filepath.Join(dir, "bin", "qemu-system-x86_64"), []byte(fakeQEMU), 0o755); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "system.img")
	os.WriteFile(disk, make([]byte, 4096), 0o644)
	old := kvmUsable
	kvmUsable = func() bool { return true }
	t.Cleanup(func() { kvmUsable = old })

	for _, tc := range []struct {
		name, fake string
		accel      Accel
		wantAccel  Accel
		reason     string // "" means no fallback
		waitErr    bool
	}{
		{name: "MSR abort falls back", fake: "msr", wantAccel: AccelTCG, reason: "failed to set MSR 0x10a"},
		{name: "KVM error while running falls back", fake: "access", wantAccel: AccelTCG, reason: "Could not access KVM kernel module"},
		{name: "early exit falls back", fake: "exit", wantAccel: AccelTCG, reason: "QEMU exited right after starting with KVM (exit status 1)"},
		{name: "KVM works", fake: "ok", wantAccel: AccelKVM},
		{name: "a warning is no failure", fake: "warn", wantAccel: AccelKVM},
		{name: "explicit kvm never falls back", fake: "msr", accel: AccelKVM, wantAccel: AccelKVM, waitErr: true},
		{name: "explicit tcg", fake: "msr", accel: AccelTCG, wantAccel: AccelTCG},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FAKE_KVM", tc.fake)
			c := Config{Disk: disk, Arch: "amd64", Accel: tc.accel, VarsFile: filepath.Join(t.TempDir(), "vars.fd")}
			inR, inW := io.Pipe()
			var out, errb syncBuffer
			var reasons []string
			p, err := c.Start(context.Background(), StartOptions{
				Stdio:      Stdio{Stdin: inR, Stdout: &out, Stderr: &errb},
				KVMGrace:   500 * time.Millisecond,
				OnFallback: func(r string) { reasons = append(reasons, r) },
			})
			if err != nil {
				t.Fatal(err)
			}
			// The serial line reaches the QEMU that runs, not the one given up.
			go io.WriteString(inW, "hello\n")
			err = p.Wait()
			if tc.waitErr != (err != nil) {
				t.Fatalf("Wait = %v, want error %v\nstderr: %s", err, tc.waitErr, errb.String())
			}
			if p.Accel != tc.wantAccel {
				t.Errorf("runs with %q, want %q", p.Accel, tc.wantAccel)
			}
			if tc.reason == "" {
				if len(reasons) != 0 || p.FallbackReason != "" {
					t.Errorf("fell back: %q", reasons)
				}
			} else if len(reasons) != 1 || !strings.Contains(reasons[0], tc.reason) || p.FallbackReason != reasons[0] {
				t.Errorf("fallback reasons %q (process: %q), want one with %q", reasons, p.FallbackReason, tc.reason)
			}
			if !tc.waitErr {
				want := "booted with kvm=" + map[Accel]string{AccelKVM: "yes", AccelTCG: "no"}[tc.wantAccel] + "\nserial: hello\n"
				if !strings.HasSuffix(out.String(), want) {
					t.Errorf("stdout %q, want it to end with %q", out.String(), want)
				}
			}
			if tc.fake == "msr" && tc.accel == AccelAuto && !strings.Contains(errb.String(), "failed to set MSR") {
				t.Errorf("QEMU's own stderr was not passed on: %q", errb.String())
			}
		})
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
