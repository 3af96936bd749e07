package atomicfile

import (
	"os"
	"sync"
)

// The temporary paths of this process's unfinished writes. They are removed by their writers on
// every normal path; the registry is for the one path that is not normal: a process that must
// exit while a write is blocked (an interrupt whose grace period ran out) calls RemovePending
// so that it leaves nothing partial behind.
var pending struct {
	sync.Mutex
	paths map[string]struct{}
}

// Track records path (a temporary file or work directory) as belonging to an unfinished write
// until the returned function is called. Writers outside this package use it for scratch
// space that must not outlive an interrupted process.
func Track(path string) (untrack func()) {
	pending.Lock()
	if pending.paths == nil {
		pending.paths = make(map[string]struct{})
	}
	pending.paths[path] = struct{}{}
	pending.Unlock()
	return func() {
		pending.Lock()
		delete(pending.paths, path)
		pending.Unlock()
	}
}

// RemovePending removes every tracked path (files and whole directories) and returns how many
// it removed. Only a process that is about to exit calls it: a write still under way would
// find its temporary file gone.
func RemovePending() int {
	pending.Lock()
	defer pending.Unlock()
	n := 0
	for p := range pending.paths {
		if err := os.RemoveAll(p); err == nil {
			n++
		}
		delete(pending.paths, p)
	}
	return n
}
