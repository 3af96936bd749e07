//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	readAhead    = 1 << 20
	rangeRetries = 3
)

// httpReaderAt reads a remote bundle with Range requests, as rugix-ctrl's HTTP source does, so
// that the bundle is never stored on the device. Reads are served from a read-ahead window:
// the bundle reader decodes sequentially in small reads, which would otherwise cost one request
// each. It is safe for concurrent use (requests are serialised).
type httpReaderAt struct {
	ctx    context.Context
	client *http.Client
	url    string
	size   int64

	mu       sync.Mutex
	buf      []byte
	bufOff   int64
	requests int
}

// newHTTPReaderAt probes url with "Range: bytes=0-0" to learn the size from Content-Range.
func newHTTPReaderAt(ctx context.Context, url string) (*httpReaderAt, error) {
	r := &httpReaderAt{ctx: ctx, client: &http.Client{Timeout: 5 * time.Minute}, url: url}
	_, total, err := r.get(0, 1)
	if err != nil {
		return nil, err
	}
	r.size = total
	return r, nil
}

// Size is the remote file's size.
func (r *httpReaderAt) Size() int64 { return r.size }

// get fetches bytes [off, off+n), retrying a failed request, and returns them with the total
// size the server reported.
func (r *httpReaderAt) get(off, n int64) ([]byte, int64, error) {
	var err error
	for attempt := 1; attempt <= rangeRetries; attempt++ {
		var data []byte
		var total int64
		data, total, err = r.getOnce(off, n)
		if err == nil {
			return data, total, nil
		}
		if r.ctx.Err() != nil {
			break
		}
		if attempt < rangeRetries {
			time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
		}
	}
	return nil, 0, fmt.Errorf("GET %s bytes %d-%d: %w", r.url, off, off+n-1, err)
}

func (r *httpReaderAt) getOnce(off, n int64) ([]byte, int64, error) {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	r.requests++
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return nil, 0, fmt.Errorf("status %s, want 206 Partial Content (the server must support Range)", resp.Status)
	}
	start, end, total, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return nil, 0, err
	}
	if start != off || end != off+n-1 {
		return nil, 0, fmt.Errorf("Content-Range %d-%d, asked for %d-%d", start, end, off, off+n-1)
	}
	if r.size != 0 && total != r.size {
		return nil, 0, fmt.Errorf("remote size changed from %d to %d bytes", r.size, total)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, data); err != nil {
		return nil, 0, fmt.Errorf("read body: %w", err)
	}
	return data, total, nil
}

// parseContentRange parses "bytes START-END/TOTAL".
func parseContentRange(v string) (start, end, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	rng, tot, ok2 := strings.Cut(rest, "/")
	a, b, ok3 := strings.Cut(rng, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, 0, fmt.Errorf("malformed Content-Range %q", v)
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	total, err3 := strconv.ParseInt(tot, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start || total <= end {
		return 0, 0, 0, fmt.Errorf("malformed Content-Range %q", v)
	}
	return start, end, total, nil
}

// ReadAt implements io.ReaderAt.
func (r *httpReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", r.url, off)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(p) && off < r.size {
		if off >= r.bufOff && off < r.bufOff+int64(len(r.buf)) {
			c := copy(p[n:], r.buf[off-r.bufOff:])
			n += c
			off += int64(c)
			continue
		}
		want := min(max(int64(len(p)-n), readAhead), r.size-off)
		data, _, err := r.get(off, want)
		if err != nil {
			return n, err
		}
		r.buf, r.bufOff = data, off
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
