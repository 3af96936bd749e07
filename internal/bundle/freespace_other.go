//go:build !linux

package bundle

import "errors"

// FreeSpace is only implemented on Linux; elsewhere callers fall back to a fixed limit.
func FreeSpace(dir string) (int64, error) {
	return 0, errors.ErrUnsupported
}
