package server

// GET /api/v1/connect/ws: the WebSocket the real nexigon-cli and nexigon-agent use instead of
// the HTTP actions API (spec §1.3). The upgrade carries Authorization: Bearer (checked exactly
// as for HTTP actions, before upgrading); X-Register-Connection, X-User-Token,
// X-Deployment-Token, X-Device-Fingerprint and X-Client-Cert are sent too and not needed here.
// See nexigon/nexigon@33fb37c crates/libs/nexigon-client/src/lib.rs (ClientBuilder::connect)
// and src/websocket.rs (one binary message per multiplex frame; text, ping, pong and close
// messages are not frames).

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/otabake/otabake/internal/hub"
)

// wsPath is where clients connect (nexigon-client: ws_url.set_path("/api/v1/connect/ws")).
const wsPath = "/api/v1/connect/ws"

func (s *server) handleWS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, hub.Errorf(hub.KindInvalid, "%s is a WebSocket (GET with Upgrade), not %s", wsPath, r.Method))
		return
	}
	if ae := s.authenticate(r); ae != nil { // the HTTP API's token rules, before any upgrade
		writeError(w, 0, ae)
		return
	}
	base := s.publicBase(r)
	ws, err := websocket.Accept(wsResponse{w}, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		s.log.Debug("websocket upgrade refused", "err", err) // Accept has answered the client
		return
	}
	ws.SetReadLimit(muxMaxFrame)
	// The connection outlives nothing but this handler; keep the request's values only.
	ctx := context.WithoutCancel(r.Context())
	idle := max(s.limits.IdleTimeout, s.limits.IOTimeout)
	c := newMuxConn(ctx, ws, s.log, idle, s.limits.IOTimeout)
	c.accept = func(endpoint string) bool { return endpoint == rpcExecutor }
	c.serve = func(ctx context.Context, ch *muxChan) error { return s.serveExecutor(ctx, ch, base) }
	start := time.Now()
	err = c.run()
	s.log.Debug("websocket closed", "duration", time.Since(start).Round(time.Millisecond), "err", err)
}

// wsResponse hands the upgrade the raw connection with no deadline left from the progress
// deadlines of ordinary requests (progressDeadlines sets one when the 101 is written): from
// then on the multiplex layer bounds every read and write itself.
type wsResponse struct{ http.ResponseWriter }

func (w wsResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		conn.SetDeadline(time.Time{})
	}
	return conn, brw, err
}
