package rootfs

import (
	"os"
	"path"
	"strings"
)

// A dirChain keeps the last chainWindow directories of its chain open, and every
// chainWindow-th directory above them, so that going back up any number of levels reopens at
// most chainWindow components, while a chain d levels deep holds about chainWindow + d/chainWindow
// descriptors.
const chainWindow = 32

// dirChain keeps the directory chain of the last name it was asked about open, so that an
// operation on a name costs one openat per directory not already open instead of one per
// path component. os.Root walks every component of every name it is given: extracting an
// archive of depth d that way costs O(d²) system calls (13 s for 2,000 levels), while archive
// members arrive in tree order and mostly share their parent with the previous member.
//
// Every handle is opened from its parent handle (or an ancestor's) through os.Root, so nothing
// here can leave the root; the extractor only descends into names it created as directories.
type dirChain struct {
	root  *os.Root
	names []string   // components of the current directory
	open  []*os.Root // open[i] is names[:i+1], or nil when closed (see chainWindow)
}

func newDirChain(root *os.Root) *dirChain { return &dirChain{root: root} }

// parent returns a handle of the directory holding name (a clean relative path) and name's
// last component, to be used with that handle.
func (c *dirChain) parent(name string) (*os.Root, string, error) {
	dir, base := path.Split(name)
	if dir == "" {
		return c.root, base, nil
	}
	comps := strings.Split(dir[:len(dir)-1], "/")
	n := 0
	for n < len(c.names) && n < len(comps) && comps[n] == c.names[n] {
		n++
	}
	c.truncate(n)
	for _, comp := range comps[n:] {
		h, err := c.top()
		if err != nil {
			return nil, "", err
		}
		sub, err := h.OpenRoot(comp)
		if err != nil {
			return nil, "", err
		}
		c.names = append(c.names, comp)
		c.open = append(c.open, sub)
		c.limit()
	}
	h, err := c.top()
	return h, base, err
}

// top returns the handle of the current directory, reopening it from its nearest open
// ancestor when it was closed.
func (c *dirChain) top() (*os.Root, error) {
	i := len(c.names) - 1
	if i < 0 {
		return c.root, nil
	}
	if c.open[i] != nil {
		return c.open[i], nil
	}
	j := i - 1
	for j >= 0 && c.open[j] == nil {
		j--
	}
	from := c.root
	if j >= 0 {
		from = c.open[j]
	}
	h, err := from.OpenRoot(strings.Join(c.names[j+1:], "/"))
	if err != nil {
		return nil, err
	}
	c.open[i] = h
	return h, nil
}

// limit closes the handle that just left the window of open directories, unless it is one
// of the checkpoints kept every chainWindow levels.
func (c *dirChain) limit() {
	i := len(c.open) - 1 - chainWindow
	if i >= 0 && (i+1)%chainWindow != 0 && c.open[i] != nil {
		c.open[i].Close()
		c.open[i] = nil
	}
}

// truncate closes the chain below its first n components.
func (c *dirChain) truncate(n int) {
	for i := len(c.open) - 1; i >= n; i-- {
		if c.open[i] != nil {
			c.open[i].Close()
		}
	}
	c.names, c.open = c.names[:n], c.open[:n]
}

// close releases every handle; the root stays open.
func (c *dirChain) close() { c.truncate(0) }
