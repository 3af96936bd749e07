package hubtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// Fault is one scripted failure. It applies to the first request that matches Method and
// PathPrefix (empty matches anything) while it is at the head of the queue.
type Fault struct {
	Method     string
	PathPrefix string
	// Status, with Body and RetryAfter, is the answer sent instead of the real one.
	Status     int
	Body       string
	RetryAfter string
	// Drop closes the connection without an answer after reading DropAfter bytes of the
	// request body: a network failure in the middle of an upload.
	Drop      bool
	DropAfter int64
	// DropResponse lets the real handler act on the request, then closes the connection
	// instead of sending its answer: the case where the client cannot know the outcome.
	DropResponse bool
}

// Faults is an http.Handler that injects scripted faults in front of a real handler and
// counts requests, to show that clients retry what they should and nothing else.
type Faults struct {
	next    http.Handler
	mu      sync.Mutex
	pending []Fault
	seen    []string // "METHOD path"
}

// NewFaults wraps next.
func NewFaults(next http.Handler) *Faults { return &Faults{next: next} }

// Add queues faults; they are used up in order.
func (f *Faults) Add(faults ...Fault) {
	f.mu.Lock()
	f.pending = append(f.pending, faults...)
	f.mu.Unlock()
}

// Pending returns how many queued faults have not fired yet.
func (f *Faults) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// Requests counts the requests seen (faulted or not) with method (empty: any) whose path
// starts with pathPrefix.
func (f *Faults) Requests(method, pathPrefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.seen {
		m, p, _ := strings.Cut(s, " ")
		if (method == "" || m == method) && strings.HasPrefix(p, pathPrefix) {
			n++
		}
	}
	return n
}

// ServeHTTP implements http.Handler.
func (f *Faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen = append(f.seen, r.Method+" "+r.URL.Path)
	var fault *Fault
	if len(f.pending) > 0 {
		h := f.pending[0]
		if (h.Method == "" || h.Method == r.Method) && strings.HasPrefix(r.URL.Path, h.PathPrefix) {
			fault = &h
			f.pending = f.pending[1:]
		}
	}
	f.mu.Unlock()
	switch {
	case fault == nil:
		f.next.ServeHTTP(w, r)
	case fault.DropResponse:
		f.next.ServeHTTP(httptest.NewRecorder(), r)
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	case fault.Drop:
		io.CopyN(io.Discard, r.Body, fault.DropAfter)
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	default:
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		if fault.RetryAfter != "" {
			w.Header().Set("Retry-After", fault.RetryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(fault.Status)
		io.WriteString(w, fault.Body)
	}
}
