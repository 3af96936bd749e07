package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/local"
)

// limited is the real serving stack of `otabake hub serve` (NewHTTPServer on LimitListener)
// with short limits.
type limited struct {
	addr  string
	url   string
	store *local.Store
	srv   *server
}

func serveLimited(t *testing.T, l Limits) *limited { return serveWithToken(t, l, testToken) }

// serveWithToken runs the real serving stack on a loopback listener, as `hub serve --token`.
func serveWithToken(t *testing.T, l Limits, token string) *limited {
	t.Helper()
	store, err := local.Open(t.TempDir(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, _, err := store.Init(context.Background(), "repo", "pkg"); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	srv, err := newServer(Config{Store: store, Token: token, BaseURL: base, Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	hs := NewHTTPServer(srv.routes(), l)
	go hs.Serve(LimitListener(ln, l.WithDefaults().MaxConns))
	t.Cleanup(func() { hs.Close() })
	return &limited{addr: ln.Addr().String(), url: base, store: store, srv: srv}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c (read hits EOF or reset) within d,
// discarding whatever response comes first.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

const actorRequest = "POST /api/v1/actions/invoke/actor_GetActor HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testToken + "\r\nContent-Length: 2\r\n\r\n{}"

func TestSlowHeadersDisconnected(t *testing.T) {
	l := serveLimited(t, Limits{ReadHeaderTimeout: 200 * time.Millisecond})
	c := dial(t, l.addr)
	fmt.Fprint(c, "POST /api/v1/actions/invoke/actor_GetActor HTTP/1.1\r\nHost: x\r\n")
	if !closedWithin(c, 2*time.Second) {
		t.Fatal("a client that never finishes its headers keeps its connection")
	}
}

func TestIdleClientDisconnected(t *testing.T) {
	l := serveLimited(t, Limits{IdleTimeout: 200 * time.Millisecond})
	c := dial(t, l.addr)
	fmt.Fprint(c, actorRequest)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("an idle keep-alive connection was kept for %s (err %v)", time.Since(start).Round(time.Millisecond), err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestTricklingBodyDisconnected(t *testing.T) {
	l := serveLimited(t, Limits{IOTimeout: 200 * time.Millisecond})
	c := dial(t, l.addr)
	fmt.Fprint(c, "POST /api/v1/actions/invoke/actor_GetActor HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testToken+"\r\nContent-Length: 100\r\n\r\n{")
	if !closedWithin(c, 2*time.Second) {
		t.Fatal("a client that stalls in its body keeps its connection")
	}
}

func TestConnectionLimit(t *testing.T) {
	l := serveLimited(t, Limits{MaxConns: 2, ReadHeaderTimeout: 10 * time.Second})
	var holders []net.Conn
	for i := 0; i < 2; i++ {
		c := dial(t, l.addr)
		fmt.Fprint(c, "GET / HTTP/1.1\r\n") // unfinished headers hold a slot
		holders = append(holders, c)
	}
	time.Sleep(50 * time.Millisecond)
	third := dial(t, l.addr)
	fmt.Fprint(third, actorRequest)
	third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := third.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("the third connection was served beside two held ones (err %v)", err)
	}
	holders[0].Close()
	third.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(third), nil)
	if err != nil {
		t.Fatalf("the third connection was not served after a slot freed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestMaxInputAndHeaderBytes(t *testing.T) {
	l := serveLimited(t, Limits{MaxInputBytes: 1 << 10, MaxHeaderBytes: 4 << 10})
	body := `{"x":"` + strings.Repeat("a", 2<<10) + `"}`
	req, _ := http.NewRequest(http.MethodPost, l.url+"/api/v1/actions/invoke/actor_GetActor", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkError(t, resp.StatusCode, data, http.StatusRequestEntityTooLarge, hub.KindInvalid, "larger than 1024 bytes")

	req, _ = http.NewRequest(http.MethodPost, l.url+"/api/v1/actions/invoke/actor_GetActor", strings.NewReader("{}"))
	req.Header.Set("X-Big", strings.Repeat("h", 16<<10))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("16 KiB header: status %d, want 431", resp.StatusCode)
	}
}

// patternReader yields size bytes of a repeating pattern in chunks of at most chunk bytes,
// pausing for pause every pauseEvery bytes: slow, but never stalled for a whole IOTimeout.
type patternReader struct {
	block            []byte
	left, size       int64
	chunk            int
	pause            time.Duration
	pauseEvery, next int64
	pauses           int
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if done := p.size - p.left; done >= p.next {
		p.next += p.pauseEvery
		if done > 0 {
			time.Sleep(p.pause)
			p.pauses++
		}
	}
	n := min(len(b), p.chunk, int(p.left))
	off := int((p.size - p.left) % int64(len(p.block)))
	n = copy(b[:n], p.block[off:])
	p.left -= int64(n)
	return n, nil
}

func newPattern(size int64, pause time.Duration, pauseEvery int64) *patternReader {
	block := make([]byte, 1<<20)
	for i := range block {
		block[i] = byte(i*7 + i>>8)
	}
	return &patternReader{block: block, left: size, size: size, chunk: 32 << 10, pause: pause, pauseEvery: pauseEvery}
}

// TestSlowProgressingTransfer streams an upload and a download that each take many times
// IOTimeout, with pauses shorter than it: both must complete. Without -short the asset is
// 1 GiB (the issue's size); with -short 64 MiB.
func TestSlowProgressingTransfer(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	const ioTimeout = 200 * time.Millisecond
	pause := 150 * time.Millisecond
	pauseEvery := size / 8
	l := serveLimited(t, Limits{IOTimeout: ioTimeout})
	ctx := context.Background()

	h := sha256.New()
	io.Copy(h, newPattern(size, 0, size))
	d := hub.SHA256Digest(h.Sum(nil))
	repoID, _, _ := l.store.ResolveRepository(ctx, "repo")
	assetID, _, err := l.store.CreateAsset(ctx, repoID, size, d)
	if err != nil {
		t.Fatal(err)
	}
	up, err := l.srv.issueUploadURL(ctx, assetID)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	body := newPattern(size, pause, pauseEvery)
	req, _ := http.NewRequest(http.MethodPut, up.URL, body)
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	upTime := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("slow upload: status %d: %s", resp.StatusCode, msg)
	}
	if err := l.store.FinalizeAssetUpload(ctx, assetID); err != nil {
		t.Fatal(err)
	}

	u, err := l.srv.issueDownloadURL(ctx, assetID, "")
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	resp, err = http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dh := sha256.New()
	n, err := io.Copy(dh, &slowReader{r: resp.Body, pause: pause, pauseEvery: pauseEvery, h: dh})
	if err != nil || n != size {
		t.Fatalf("slow download: %d of %d bytes: %v", n, size, err)
	}
	if got := hub.SHA256Digest(dh.Sum(nil)); got != d {
		t.Fatalf("downloaded %s, want %s", got, d)
	}
	t.Logf("%d MiB with %d pauses of %s under a %s progress deadline: upload %s, download %s",
		size>>20, body.pauses, pause, ioTimeout, upTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if upTime < 2*ioTimeout {
		t.Fatalf("the upload took %s, not longer than the deadline: the test proves nothing", upTime)
	}
}

// slowReader pauses every pauseEvery bytes read.
type slowReader struct {
	r          io.Reader
	pause      time.Duration
	pauseEvery int64
	n, next    int64
	h          hash.Hash
}

func (s *slowReader) Read(b []byte) (int, error) {
	if s.n >= s.next {
		s.next += s.pauseEvery
		if s.n > 0 {
			time.Sleep(s.pause)
		}
	}
	n, err := s.r.Read(b[:min(len(b), 32<<10)])
	s.n += int64(n)
	return n, err
}

// TestHostileNamesOverHTTP: the action API refuses hostile asset names and tags with the
// Hub's Invalid error.
func TestHostileNamesOverHTTP(t *testing.T) {
	e := newEnv(t)
	v := e.ok("repositories_CreateVersion", map[string]any{"packageId": e.pkgID})["versionId"].(string)
	data := []byte("x")
	assetID, put := e.upload(data)
	if st, _ := e.do(put); st != http.StatusOK {
		t.Fatalf("upload: %d", st)
	}
	e.ok("repositories_FinalizeAssetUpload", map[string]any{"assetId": assetID})
	for _, name := range []string{"nul\x00", "a\nb", "\x1b]0;pwned\x07", "..", "../../etc/passwd", "/", "/abs", "a/./b"} {
		e.fails("repositories_AddVersionAsset", map[string]any{"versionId": v, "assetId": assetID, "filename": name}, http.StatusBadRequest, hub.KindInvalid, "invalid filename")
	}
	for _, tag := range []string{"..", "a/b", "x\n", "\x1b[31m"} {
		e.fails("repositories_TagVersion", map[string]any{"versionId": v, "tags": []map[string]any{{"tag": tag}}}, http.StatusBadRequest, hub.KindInvalid, "invalid tag")
	}
}
