package bundle

import (
	"fmt"
	"math"

	"golang.org/x/sys/unix"
)

// FreeSpace returns the bytes an unprivileged writer may still use on the file system holding
// dir (statfs f_bavail × f_bsize): the limit for extracting a payload into it.
func FreeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	bsize, avail := uint64(st.Bsize), uint64(st.Bavail)
	if bsize != 0 && avail > math.MaxInt64/bsize {
		return math.MaxInt64, nil
	}
	return int64(avail * bsize), nil
}
