package ctxio

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("12345"), 0o644)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		limit      int64
		want, err  string
	}{
		{name: "fits", path: small, limit: 5, want: "12345"},
		{name: "too large", path: small, limit: 4, err: "larger than 4 bytes"},
		{name: "missing", path: filepath.Join(dir, "nope"), limit: 10, err: "no such file"},
		{name: "directory", path: dir, limit: 10, err: "not a regular file"},
		{name: "fifo", path: fifo, limit: 10, err: "not a regular file"},
		{name: "device", path: "/dev/zero", limit: 10, err: "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var got []byte
			var err error
			go func() { got, err = ReadFile(tc.path, tc.limit); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadFile blocked")
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if tc.name == "too large" && !errors.Is(err, ErrTooLarge) {
					t.Errorf("err = %v, want ErrTooLarge", err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("ReadFile = %q, %v", got, err)
			}
		})
	}
}
