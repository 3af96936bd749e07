package image

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/e2fs"
	"github.com/otabake/otabake/internal/gpt"
	"github.com/otabake/otabake/internal/tool"
)

// Ext4Options control a filesystem made by MakeExt4.
type Ext4Options struct {
	// UUID and HashSeed replace the random values mkfs.ext4 would pick.
	UUID, HashSeed gpt.GUID
	// Journal keeps the ext4 journal. Rugix builds the system partition without one (it is
	// mounted read-only) and the GRUB boot partition with one.
	Journal bool
	// Clamp is SOURCE_DATE_EPOCH: the filesystem's own times and every inode time later than it
	// are set to it.
	Clamp time.Time
	// Fixups are debugfs commands run after the build and the timestamp clamp, in one
	// "debugfs -w" session; this is how ownership, device nodes and xattrs that an ordinary
	// user cannot create on disk reach the image (see the package documentation).
	Fixups []string
	// WorkDir holds the pinned mke2fs.conf and the debugfs script; it defaults to the directory
	// of the output file.
	WorkDir string
}

// mke2fsConf pins the feature set so that the image does not depend on the build host's
// /etc/mke2fs.conf. The features are those of Debian bookworm's defaults minus orphan_file and
// metadata_csum_seed, which GRUB 2.06 and older e2fsprogs on devices do not know.
const mke2fsConf = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	reserved_ratio = 5.0
	lazy_itable_init = false
	lazy_journal_init = false

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
`

// MakeExt4 makes an ext4 filesystem image of size bytes at out from the tree dir with
// "mkfs.ext4 -d" (Debian package e2fsprogs), owned by root, with the identifiers and timestamp
// clamp of opts, then applies opts.Fixups with debugfs. The output appears only when complete.
func MakeExt4(ctx context.Context, dir, out string, size int64, opts Ext4Options) error {
	mkfs, err := tool.Find("mkfs.ext4", "e2fsprogs")
	if err != nil {
		return err
	}
	work := opts.WorkDir
	if work == "" {
		work = filepath.Dir(out)
	}
	conf := filepath.Join(work, "mke2fs.conf")
	if err := atomicfile.WriteFile(conf, []byte(mke2fsConf), 0o644); err != nil {
		return err
	}
	f, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return fmt.Errorf("make ext4: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("make ext4 %s: %w", out, err)
	}
	env := toolEnv(opts.Clamp, "MKE2FS_CONFIG="+conf)
	features := "^has_journal"
	if opts.Journal {
		features = "has_journal"
	}
	args := []string{"-F", "-q", "-t", "ext4", "-d", dir, "-O", features,
		"-U", opts.UUID.String(), "-E", "hash_seed=" + opts.HashSeed.String() + ",root_owner=0:0",
		f.Name()}
	if err := runImageTool(ctx, mkfs, args, env); err != nil {
		return fmt.Errorf("mkfs.ext4 -d %s (%d bytes): %w", dir, size, err)
	}
	script, err := clampScript(dir, opts.Clamp)
	if err != nil {
		return fmt.Errorf("make ext4 %s: %w", out, err)
	}
	for _, c := range opts.Fixups {
		if strings.ContainsAny(c, "\n\r") {
			return fmt.Errorf("make ext4 %s: debugfs fixup %q contains a newline", out, c)
		}
		script = append(script, c...)
		script = append(script, '\n')
	}
	if len(script) > 0 {
		if err := e2fs.Debugfs(ctx, f.Name(), script, toolEnv(opts.Clamp)); err != nil {
			return fmt.Errorf("make ext4 %s: %w", out, err)
		}
	}
	return f.Commit()
}

// clampScript lists debugfs commands that lower every inode time above clamp to clamp.
// mkfs.ext4 before 1.47.1 copies atime, mtime and ctime from the source tree, and a freshly
// extracted tree has ctimes of "now", so without this no two builds would match. Every atime
// is set to the inode's (clamped) mtime, unconditionally: reading the staged tree (the build
// itself, mkfs.ext4 after taking its stat) moves atimes to the clock's time, so the atime
// mkfs recorded and the one seen here can differ and neither says anything about the release
// (a tarball's device nodes get the same rule in rootfs).
func clampScript(dir string, clamp time.Time) ([]byte, error) {
	if clamp.IsZero() {
		return nil, nil
	}
	e := clamp.Unix()
	var b bytes.Buffer
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat data", path)
		}
		rel, _ := filepath.Rel(dir, path)
		p := "/" + filepath.ToSlash(rel)
		if rel == "." {
			p = "/"
		}
		if strings.ContainsAny(p, "\"\n\r") {
			return fmt.Errorf("%s: path contains a quote or newline, which debugfs cannot address", path)
		}
		fmt.Fprintf(&b, "sif \"%s\" atime @%d\n", p, min(int64(st.Mtim.Sec), e))
		for _, t := range []struct {
			field string
			sec   int64
		}{{"mtime", int64(st.Mtim.Sec)}, {"ctime", int64(st.Ctim.Sec)}} {
			if t.sec > e {
				fmt.Fprintf(&b, "sif \"%s\" %s @%d\n", p, t.field, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list timestamps of %s: %w", dir, err)
	}
	return b.Bytes(), nil
}

// toolEnv pins the locale and, with a clamp, the time e2fsprogs uses for "now" (1.47.1+ reads
// SOURCE_DATE_EPOCH, older versions E2FSPROGS_FAKE_TIME), and drops the mke2fs settings of the
// caller's environment, so that the image depends on nothing but its inputs (tool.Cmd's Env).
func toolEnv(clamp time.Time, extra ...string) []string {
	env := []string{"LC_ALL=C", "SOURCE_DATE_EPOCH", "E2FSPROGS_FAKE_TIME", "MKE2FS_CONFIG", "MKE2FS_SYNC", "MKE2FS_DEVICE_SECTSIZE", "MKE2FS_DEVICE_PHYS_SECTSIZE"}
	if !clamp.IsZero() {
		s := strconv.FormatInt(clamp.Unix(), 10)
		env = append(env, "SOURCE_DATE_EPOCH="+s, "E2FSPROGS_FAKE_TIME="+s)
	}
	return append(env, extra...)
}

// runImageTool runs a tool of e2fsprogs or GRUB with env (toolEnv); debugfs and mkfs echo a lot on
// stdout, which is of no use, so only 64 KiB of it are kept.
func runImageTool(ctx context.Context, path string, args, env []string) error {
	_, err := tool.Run(ctx, tool.Cmd{Path: path, Args: args, Env: env, MaxStdout: 1 << 16, MaxStderr: 1 << 20})
	return err
}
