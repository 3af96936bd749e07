package server

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/otabake/otabake/internal/hub"
)

// Limits bound what one client can hold of the server. Timeouts are about progress, not about
// whole requests: a multi-gigabyte upload or download over a slow link takes as long as it
// takes, as long as bytes keep moving.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers. Zero means 10 s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection may wait for its next request.
	// Zero means 60 s.
	IdleTimeout time.Duration
	// IOTimeout bounds each read of a request body and each write of a response chunk: a
	// client that sends or accepts nothing for this long is disconnected. Zero means 60 s.
	IOTimeout time.Duration
	// MaxConns is how many connections are served at once; more wait to be accepted.
	// Zero means 256.
	MaxConns int
	// MaxHeaderBytes bounds a request's headers. Zero means 64 KiB.
	MaxHeaderBytes int
	// MaxInputBytes bounds an action's JSON input. Zero means 8 MiB, the Hub's limit
	// (spec §1.1).
	MaxInputBytes int64
}

// Defaults of Limits.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultIOTimeout         = 60 * time.Second
	DefaultMaxConns          = 256
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxInputBytes     = maxInput
)

// WithDefaults fills in zero fields.
func (l Limits) WithDefaults() Limits {
	l.ReadHeaderTimeout = hub.OrDefault(l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	l.IdleTimeout = hub.OrDefault(l.IdleTimeout, DefaultIdleTimeout)
	l.IOTimeout = hub.OrDefault(l.IOTimeout, DefaultIOTimeout)
	l.MaxConns = hub.OrDefault(l.MaxConns, DefaultMaxConns)
	l.MaxHeaderBytes = hub.OrDefault(l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	l.MaxInputBytes = hub.OrDefault(l.MaxInputBytes, DefaultMaxInputBytes)
	return l
}

// NewHTTPServer returns an http.Server for a handler from New with the header, idle and header
// size limits set. Serve it on Listen's listener, which bounds the connections.
func NewHTTPServer(h http.Handler, l Limits) *http.Server {
	l = l.WithDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		// No ReadTimeout or WriteTimeout: they bound whole requests, which would cut off
		// large transfers on slow links. The handler's progress deadlines do the job.
	}
}

// LimitListener returns a listener that holds at most n accepted connections at once; the
// next Accept waits (the client's connection waits in the kernel's backlog) until one closes.
func LimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, hub.OrDefault(n, DefaultMaxConns)), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// progressDeadlines gives each read of the request body and each write of the response its
// own deadline, d from when it starts, so that a stalled client is cut off however long a
// transfer that keeps moving takes.
func progressDeadlines(next http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		// A deadline left over from an earlier request on this connection must not break
		// writes net/http makes itself (100 Continue, implicit headers).
		rc.SetWriteDeadline(time.Now().Add(d))
		pr := &progressReader{body: r.Body, rc: rc, d: d}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = pr
		}
		next.ServeHTTP(&progressWriter{ResponseWriter: w, rc: rc, d: d}, r)
		rc.SetWriteDeadline(time.Now().Add(d))
		if !pr.eof && r.ContentLength != 0 {
			// net/http discards what is left of the body to reuse the connection: bound it.
			rc.SetReadDeadline(time.Now().Add(d))
		}
	})
}

type progressReader struct {
	body io.ReadCloser
	rc   *http.ResponseController
	d    time.Duration
	eof  bool
}

func (p *progressReader) Read(b []byte) (int, error) {
	p.rc.SetReadDeadline(time.Now().Add(p.d))
	n, err := p.body.Read(b)
	if errors.Is(err, io.EOF) {
		p.eof = true
		// The body is done; net/http's background read for the next request must not time out
		// while the handler is still working (that would cancel the request's context).
		p.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (p *progressReader) Close() error { return p.body.Close() }

// progressChunk is how much of a response is written under one deadline.
const progressChunk = 64 << 10

type progressWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (p *progressWriter) WriteHeader(code int) {
	p.rc.SetWriteDeadline(time.Now().Add(p.d))
	p.ResponseWriter.WriteHeader(code)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n := min(len(b), progressChunk)
		p.rc.SetWriteDeadline(time.Now().Add(p.d))
		m, err := p.ResponseWriter.Write(b[:n])
		written += m
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
