// Package tool finds and runs the external programs otabake and otabake-agent call (mkfs.ext4,
// debugfs, xz, grub-mkimage, git, run-bakery, rugix-ctrl, rauc, nexigon-agent): when one is
// missing the error names the Debian package that provides it, and what a program writes is
// captured bounded (Output), so that no tool can grow memory without limit.
package tool

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// sbinDirs are searched after PATH because ordinary users often lack the sbin directories in
// which Debian installs mkfs.ext4, debugfs and sfdisk.
var sbinDirs = []string{"/usr/sbin", "/sbin"}

// Find returns the path of the program name from PATH or the sbin directories; the error
// names debianPackage.
func Find(name, debianPackage string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s: install the Debian package %s", name, strings.Join(sbinDirs, ", "), debianPackage)
}
