package rootfs

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestCloneKeepsTree(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "usr/bin"), 0o755))
	must(os.WriteFile(filepath.Join(src, "usr/bin/tool"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(src, "usr/bin/tool"), 0o755|os.ModeSetuid))
	must(os.Link(filepath.Join(src, "usr/bin/tool"), filepath.Join(src, "usr/bin/tool2")))
	must(os.Symlink("tool", filepath.Join(src, "usr/bin/link")))
	must(syscall.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	must(os.Mkdir(filepath.Join(src, "ro"), 0o555))
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(os.Chtimes(filepath.Join(src, "usr/bin/tool"), old, old))

	dst := filepath.Join(t.TempDir(), "clone")
	must(Clone(context.Background(), src, dst))

	st, err := os.Stat(filepath.Join(dst, "usr/bin/tool"))
	must(err)
	if st.Mode()&os.ModeSetuid == 0 || st.Mode().Perm() != 0o755 || !st.ModTime().Equal(old) {
		t.Errorf("tool: mode %v mtime %v", st.Mode(), st.ModTime())
	}
	if n := st.Sys().(*syscall.Stat_t).Nlink; n != 2 {
		t.Errorf("hard link count %d, want 2", n)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "usr/bin/link")); l != "tool" {
		t.Errorf("symlink -> %q", l)
	}
	if st, _ := os.Lstat(filepath.Join(dst, "fifo")); st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v", st.Mode())
	}
	if st, _ := os.Stat(filepath.Join(dst, "ro")); st.Mode().Perm() != 0o555 {
		t.Errorf("ro: %v", st.Mode())
	}
	// Writing through the clone must not change the source (no shared inodes).
	must(os.WriteFile(filepath.Join(dst, "usr/bin/tool"), []byte("changed"), 0o755))
	if b, _ := os.ReadFile(filepath.Join(src, "usr/bin/tool")); string(b) != "#!/bin/sh\n" {
		t.Errorf("source changed through the clone: %q", b)
	}
	if err := Clone(context.Background(), src, dst); err == nil {
		t.Error("clone into an existing directory succeeded")
	}
}
