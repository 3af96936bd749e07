package server

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/otabake/otabake/internal/hub"
)

// wsToken is a well-formed user token (u_sk_ + 66 base-58), as nexigon-cli sends.
var wsToken = "u_sk_" + strings.Repeat("2", 66)

// wsEnv is a server on a loopback listener, the way `hub serve` runs it (NewHTTPServer and
// LimitListener around New), holding the user token nexigon-cli sends.
type wsEnv = limited

func newWSEnv(t *testing.T, l Limits) *wsEnv { return serveWithToken(t, l, wsToken) }

// wsClient is the client half of nexigon-multiplex and nexigon-rpc, minimal: one executor
// channel, credits honoured both ways.
type wsClient struct {
	t      *testing.T
	ws     *websocket.Conn
	remote uint64 // the server's channel ID
	sendF  uint32
	sendB  uint32
	in     []byte // received channel data not yet consumed
	closed bool   // ChannelClosed received
}

func dialWS(t *testing.T, e *wsEnv, token string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
		h.Set("X-User-Token", token)
	}
	h.Set("X-Register-Connection", "false")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+wsPath, &websocket.DialOptions{HTTPHeader: h})
	if ws != nil {
		ws.SetReadLimit(1 << 20)
		t.Cleanup(func() { ws.CloseNow() })
	}
	return ws, resp, err
}

func (c *wsClient) send(f muxFrame) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, appendMuxFrame(nil, f)); err != nil {
		c.t.Fatalf("send %#02x: %v", f.Tag, err)
	}
}

// recv returns the next frame; channel data is credited back at once.
func (c *wsClient) recv() (muxFrame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, msg, err := c.ws.Read(ctx)
	if err != nil {
		return muxFrame{}, err
	}
	if typ != websocket.MessageBinary {
		c.t.Fatalf("message type %v", typ)
	}
	f, err := parseMuxFrame(msg, 1<<20)
	if err != nil {
		c.t.Fatalf("server sent %v", err)
	}
	switch f.Tag {
	case muxChannelAdjust:
		c.sendF += f.Frames
		c.sendB += f.Bytes
	case muxChannelData:
		c.in = append(c.in, f.Data...)
		c.send(muxFrame{Tag: muxChannelAdjust, Channel: c.remote, Frames: 1, Bytes: uint32(len(f.Data))})
	case muxChannelClosed:
		c.closed = true
	}
	return f, nil
}

func (c *wsClient) mustRecv() muxFrame {
	c.t.Helper()
	f, err := c.recv()
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// hello exchanges Hello frames.
func (c *wsClient) hello() {
	c.t.Helper()
	c.send(muxFrame{Tag: muxHello})
	if f := c.mustRecv(); f.Tag != muxHello {
		c.t.Fatalf("first frame %#02x, want Hello", f.Tag)
	}
}

// open requests a channel; it returns the accept or reject frame.
func (c *wsClient) open(id uint64, endpoint string) muxFrame {
	c.t.Helper()
	c.send(muxFrame{Tag: muxChannelRequest, Channel: id, Frames: 128, Bytes: 16 << 10, Data: []byte(endpoint)})
	for {
		f := c.mustRecv()
		if f.Tag == muxChannelAccept || f.Tag == muxChannelReject {
			return f
		}
	}
}

func newWSClient(t *testing.T, e *wsEnv) *wsClient {
	t.Helper()
	ws, _, err := dialWS(t, e, wsToken)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, ws: ws}
	c.hello()
	f := c.open(1, rpcExecutor)
	if f.Tag != muxChannelAccept || f.Channel != 1 {
		t.Fatalf("executor: %+v", f)
	}
	c.remote, c.sendF, c.sendB = f.Sender, muxInitialFrames, muxInitialBytes
	return c
}

// write sends data on the executor channel within the credit the server granted.
func (c *wsClient) write(p []byte) {
	c.t.Helper()
	for len(p) > 0 {
		for c.sendF == 0 || c.sendB == 0 {
			c.mustRecv()
		}
		n := min(len(p), int(c.sendB), 4000)
		c.send(muxFrame{Tag: muxChannelData, Channel: c.remote, Data: p[:n]})
		c.sendF--
		c.sendB -= uint32(n)
		p = p[n:]
	}
}

// call runs one action and returns its ActionResult.
func (c *wsClient) call(name string, input any) rpcResult {
	c.t.Helper()
	data, _ := json.Marshal(input)
	c.write(rpcBytes(name, data))
	for len(c.in) < 4 || len(c.in) < 4+int(binary.BigEndian.Uint32(c.in)) {
		if c.closed {
			c.t.Fatalf("channel closed after %d bytes", len(c.in))
		}
		c.mustRecv()
	}
	n := 4 + int(binary.BigEndian.Uint32(c.in))
	var res rpcResult
	if err := json.Unmarshal(c.in[4:n], &res); err != nil {
		c.t.Fatalf("result %q: %v", c.in[4:n], err)
	}
	c.in = c.in[n:]
	return res
}

// httpCall runs an action over the HTTP API for comparison.
func (e *wsEnv) httpCall(t *testing.T, name string, input any) []byte {
	t.Helper()
	data, _ := json.Marshal(input)
	req, _ := http.NewRequest(http.MethodPost, e.url+"/api/v1/actions/invoke/"+name, strings.NewReader(string(data)))
	req.Header.Set("Authorization", "Bearer "+wsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s over HTTP: %d %s %v", name, resp.StatusCode, out, err)
	}
	return out
}

func jsonEq(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		t.Fatalf("not JSON: %s / %s", a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func TestWSExecutorRunsActions(t *testing.T) {
	e := newWSEnv(t, Limits{})
	c := newWSClient(t, e)

	res := c.call("actor_GetActor", map[string]any{})
	if res.Result != "Ok" || !jsonEq(t, res.Value, e.httpCall(t, "actor_GetActor", map[string]any{})) {
		t.Fatalf("actor over WS %+v differs from HTTP", res)
	}
	var actor struct {
		Actor struct{ Actor, UserID, TokenID string }
	}
	json.Unmarshal(res.Value, &actor)
	if actor.Actor.Actor != "UserToken" {
		t.Errorf("actor = %s, nexigon-cli wants UserToken for a u_sk_ token", res.Value)
	}

	// A version created over the WebSocket is what the HTTP API and the store see.
	pkg := c.call("repositories_ResolvePackageByPath", map[string]string{"repository": "repo", "package": "pkg"})
	var found struct{ Result, PackageID string }
	if json.Unmarshal(pkg.Value, &found); pkg.Result != "Ok" || found.Result != "Found" {
		t.Fatalf("resolve package: %+v", pkg)
	}
	created := c.call("repositories_CreateVersion", map[string]any{
		"packageId": found.PackageID,
		"tags":      []map[string]any{{"tag": "v1", "locked": true, "reassign": false}},
		"metadata":  map[string]any{"via": "websocket"},
	})
	if created.Result != "Ok" {
		t.Fatalf("create: %+v", created)
	}
	path := map[string]string{"repository": "repo", "package": "pkg", "tag": "v1"}
	ws := c.call("repositories_ResolveVersionByPath", path)
	if ws.Result != "Ok" || !jsonEq(t, ws.Value, e.httpCall(t, "repositories_ResolveVersionByPath", path)) {
		t.Fatalf("resolve over WS %s differs from HTTP", ws.Value)
	}
	if !strings.Contains(string(ws.Value), `"Found"`) {
		t.Fatalf("resolve: %s", ws.Value)
	}
	if _, ok, err := e.store.ResolveVersion(context.Background(), hub.VersionPath{Repository: "repo", Package: "pkg", Tag: "v1"}); err != nil || !ok {
		t.Fatalf("store does not see the version: %v %v", ok, err)
	}

	// An input far beyond the initial 16 KiB credit needs credit adjustments both ways.
	big := map[string]any{"pad": strings.Repeat("x", 600<<10)}
	if res := c.call("actor_GetActor", big); res.Result != "Ok" {
		t.Fatalf("large input: %+v", res)
	}

	// Errors are ActionResult errors and the channel goes on.
	res = c.call("repositories_NoSuchAction", map[string]any{})
	if res.Result != "Error" || res.Error == nil || res.Error.Kind != "Invalid" {
		t.Fatalf("unknown action: %+v", res)
	}
	res = c.call("repositories_CreateVersion", map[string]any{"packageId": "pkg_nope"})
	if res.Result != "Error" || res.Error == nil {
		t.Fatalf("bad create: %+v", res)
	}
	if res := c.call("actor_GetActor", nil); res.Result != "Ok" {
		t.Fatalf("after errors: %+v", res)
	}

	// The client closing its sending end ends the channel cleanly.
	c.send(muxFrame{Tag: muxChannelClosed, Channel: c.remote})
	for !c.closed {
		c.mustRecv()
	}
}

func TestWSAuth(t *testing.T) {
	e := newWSEnv(t, Limits{})
	for _, tok := range []string{"", "u_sk_" + strings.Repeat("3", 66), "deployment_" + strings.Repeat("2", 66)} {
		_, resp, err := dialWS(t, e, tok)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("token %q: err %v, resp %v; want 403 before the upgrade", tok, err, resp)
		}
	}
}

func TestWSChannelLimits(t *testing.T) {
	e := newWSEnv(t, Limits{})
	ws, _, err := dialWS(t, e, wsToken)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, ws: ws}
	c.hello()
	if f := c.open(1, "device/d_x/proxy/forward/tcp/22"); f.Tag != muxChannelReject || f.Channel != 1 {
		t.Fatalf("unknown endpoint: %+v", f)
	}
	for i := range muxMaxChannels {
		if f := c.open(uint64(10+i), rpcExecutor); f.Tag != muxChannelAccept {
			t.Fatalf("channel %d: %+v", i, f)
		}
	}
	if f := c.open(99, rpcExecutor); f.Tag != muxChannelReject || !strings.Contains(string(f.Data), "too many") {
		t.Fatalf("channel beyond the limit: %+v %q", f, f.Data)
	}
	c.send(muxFrame{Tag: muxPing})
	for f := c.mustRecv(); f.Tag != muxPong; f = c.mustRecv() {
	}
}

// expectViolation reads until the server's Close frame and the end of the connection.
func expectViolation(t *testing.T, c *wsClient, want string) {
	t.Helper()
	var reason string
	for {
		f, err := c.recv()
		if err != nil {
			if reason == "" {
				t.Fatalf("connection ended (%v) without a Close frame", err)
			}
			if !strings.Contains(reason, want) {
				t.Fatalf("close reason %q, want %q", reason, want)
			}
			return
		}
		if f.Tag == muxClose {
			reason = string(f.Data)
		}
	}
}

func TestWSProtocolViolations(t *testing.T) {
	e := newWSEnv(t, Limits{})
	dial := func() *wsClient {
		ws, _, err := dialWS(t, e, wsToken)
		if err != nil {
			t.Fatal(err)
		}
		return &wsClient{t: t, ws: ws}
	}

	c := dial()
	c.send(muxFrame{Tag: muxChannelRequest, Channel: 1, Data: []byte(rpcExecutor)})
	expectViolation(t, c, "Hello")

	c = dial()
	c.hello()
	c.ws.Write(context.Background(), websocket.MessageBinary, []byte{0x16, 1})
	expectViolation(t, c, "unknown tag")

	// More frames than granted: empty data frames hold no bytes for the reader to consume,
	// so no credit comes back.
	c = newWSClient(t, e)
	for range muxWindowFrames + 1 {
		c.send(muxFrame{Tag: muxChannelData, Channel: c.remote})
	}
	expectViolation(t, c, "no frame credit")

	// A frame larger than any credit could allow is cut by the WebSocket read limit.
	c = newWSClient(t, e)
	c.ws.Write(context.Background(), websocket.MessageBinary, appendMuxFrame(nil, muxFrame{Tag: muxChannelData, Channel: c.remote, Data: make([]byte, muxMaxFrame)}))
	if _, err := c.recv(); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		for err == nil {
			_, err = c.recv()
		}
		if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			t.Fatalf("oversized frame: %v", err)
		}
	}

	// An input beyond the limit is answered with an error and the channel ends, without the
	// server reading (or allocating) the declared size.
	c = newWSClient(t, e)
	hdr := binary.BigEndian.AppendUint16(nil, 14)
	hdr = append(hdr, "actor_GetActor"...)
	hdr = binary.BigEndian.AppendUint32(hdr, 0xffffffff)
	c.write(hdr)
	for len(c.in) < 4 || len(c.in) < 4+int(binary.BigEndian.Uint32(c.in)) {
		c.mustRecv()
	}
	if !strings.Contains(string(c.in), "larger than") {
		t.Fatalf("oversized input answered %q", c.in)
	}
	for !c.closed {
		c.mustRecv()
	}
}

// TestWSIdle: a connection that sends nothing is closed after the idle timeout.
func TestWSIdle(t *testing.T) {
	e := newWSEnv(t, Limits{IdleTimeout: 200 * time.Millisecond, IOTimeout: 200 * time.Millisecond})
	c := newWSClient(t, e)
	start := time.Now()
	var err error
	for err == nil {
		_, err = c.recv()
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("idle connection closed after %s", d)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("server kept the idle connection: %v", err)
	}
}
