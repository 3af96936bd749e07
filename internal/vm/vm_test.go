package vm

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeHost puts a fake QEMU on PATH and fake firmware in a temp dir.
func fakeHost(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "qemu-system-x86_64"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	code, vars := filepath.Join(dir, "CODE.fd"), filepath.Join(dir, "VARS.fd")
	os.WriteFile(code, []byte("code"), 0o644)
	os.WriteFile(vars, []byte("vars-template"), 0o644)
	old := firmwareCandidates["amd64"]
	firmwareCandidates["amd64"] = struct {
		pkg   string
		pairs []Firmware
	}{"ovmf", []Firmware{{code, vars}}}
	t.Cleanup(func() { firmwareCandidates["amd64"] = old })
	return dir
}

func TestArgs(t *testing.T) {
	dir := fakeHost(t)
	disk := filepath.Join(dir, "system.img")
	os.WriteFile(disk, make([]byte, 4096), 0o644)
	vars := filepath.Join(dir, "state", "vars.fd")
	c := Config{Disk: disk, Arch: "amd64", SSHPort: 2222, Accel: AccelTCG, VarsFile: vars, Snapshot: true}
	cmd, err := c.Command()
	if err != nil {
		t.Fatal(err)
	}
	args := cmd.Args[1:]
	for _, want := range [][]string{
		{"-machine", "q35"},
		{"-accel", "tcg,thread=multi"},
		{"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + filepath.Join(dir, "CODE.fd")},
		{"-drive", "if=pflash,format=raw,unit=1,file=" + vars},
		{"-drive", "if=virtio,format=raw,file=" + disk},
		{"-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22"},
		{"-serial", "stdio", "-monitor", "none"},
		{"-snapshot"},
	} {
		found := false
		for i := range args {
			if slices.Equal(args[i:min(i+len(want), len(args))], want) {
				found = true
			}
		}
		if !found {
			t.Errorf("QEMU arguments lack %q:\n%s", want, strings.Join(args, " "))
		}
	}
	if data, err := os.ReadFile(vars); err != nil || string(data) != "vars-template" {
		t.Errorf("variable store not created from the template: %q %v", data, err)
	}
	c.Interactive, c.Snapshot = true, false
	args, _, err = c.Args()
	if err != nil || !slices.Contains(args, "mon:stdio") || slices.Contains(args, "-snapshot") {
		t.Errorf("interactive args: %v %v", args, err)
	}
}

func TestArgsErrors(t *testing.T) {
	dir := fakeHost(t)
	disk := filepath.Join(dir, "system.img")
	os.WriteFile(disk, nil, 0o644)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Arch: "amd64"}, "no disk image"},
		{Config{Disk: filepath.Join(dir, "missing.img"), Arch: "amd64"}, "missing.img"},
		{Config{Disk: dir, Arch: "amd64"}, "is not a file"},
		{Config{Disk: disk, Arch: "riscv64"}, "cannot run \"riscv64\""},
		{Config{Disk: disk, Arch: "arm64", VarsFile: "v"}, "qemu-system-arm"},
	} {
		_, _, err := c.cfg.Args()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.cfg, err, c.want)
		}
	}
	firmwareCandidates["amd64"] = struct {
		pkg   string
		pairs []Firmware
	}{"ovmf", []Firmware{{filepath.Join(dir, "none"), filepath.Join(dir, "none")}}}
	if _, err := FindFirmware("amd64"); err == nil || !strings.Contains(err.Error(), "install the Debian package ovmf") {
		t.Errorf("missing firmware: %v", err)
	}
}

// fakeShell answers like `sh` with echo off: it runs nothing, but prints a canned reply for
// each command line followed by the marker the command asks for.
func fakeShell(in io.Reader, out io.Writer, replies map[string]string) {
	sc := bufio.NewScanner(in)
	io.WriteString(out, "booting...\r\n# ")
	for sc.Scan() {
		line := sc.Text()
		cmd, marker, _ := strings.Cut(line, "; echo ")
		marker = strings.ReplaceAll(strings.Trim(marker, `"`), `""`, "")
		status := "0"
		if cmd == "false" {
			status = "1"
		}
		reply := replies[cmd]
		if reply != "" {
			reply = strings.ReplaceAll(reply, "\n", "\r\n") + "\r\n"
		}
		io.WriteString(out, reply+strings.Replace(marker, "$?", status, 1)+"\r\n# ")
	}
}

func TestConsole(t *testing.T) {
	toGuestR, toGuestW := io.Pipe()
	fromGuestR, fromGuestW := io.Pipe()
	go func() {
		fakeShell(toGuestR, fromGuestW, map[string]string{"cat /proc/cmdline": "ro root=PARTUUID=abc console=ttyS0", "two": "a\nb"})
		fromGuestW.Close()
	}()
	var log strings.Builder
	c := NewConsole(fromGuestR, toGuestW, &logWriter{&log})
	ctx := context.Background()
	if _, err := c.Expect(ctx, regexp.MustCompile(`booting`), time.Second); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd, out string
		status   int
	}{
		{"cat /proc/cmdline", "ro root=PARTUUID=abc console=ttyS0", 0},
		{"two", "a\nb", 0},
		{"false", "", 1},
	} {
		out, st, err := c.Run(ctx, tc.cmd, time.Second)
		if err != nil || out != tc.out || st != tc.status {
			t.Errorf("Run(%q) = %q, %d, %v; want %q, %d", tc.cmd, out, st, err, tc.out, tc.status)
		}
	}
	if _, err := c.Expect(ctx, regexp.MustCompile(`never`), 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "no match after") {
		t.Errorf("timeout: %v", err)
	}
	toGuestW.Close()
	if _, err := c.Expect(ctx, regexp.MustCompile(`never`), 5*time.Second); err == nil || !strings.Contains(err.Error(), "QEMU exited") {
		t.Errorf("closed: %v", err)
	}
	if !strings.Contains(log.String(), "PARTUUID=abc") {
		t.Errorf("log lacks the output: %q", log.String())
	}
}

type logWriter struct{ b *strings.Builder }

func (l *logWriter) Write(p []byte) (int, error) { return l.b.Write(p) }
