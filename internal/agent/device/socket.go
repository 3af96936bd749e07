package device

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/otabake/otabake/internal/hub"
)

// SocketTransport speaks the Nexigon agent's local API: a handshake on the executor endpoint,
// then sequential framed action requests on one connection.
//
// The agent splices an accepted connection onto its Hub connection (nexigon/nexigon
// crates/apps/nexigon-agent/src/local_api.rs `handle_client`), so the connection ends whenever
// the agent's Hub connection or the agent itself restarts, which an install that takes hours
// will see. A connection that fails is therefore closed and dialled again on the next call,
// and a call that failed on a connection left from an earlier call is sent once more on a
// new one. Every action this transport sends may be repeated: reads, property writes of the
// same value, and devices_PublishEvents with the same event IDs, which the Hub deduplicates.
type SocketTransport struct {
	actionTransport
	path string
	mu   sync.Mutex
	conn net.Conn // nil between a failure and the next call
	br   *bufio.Reader
}

// DialSocket connects to the local API at path and performs the handshake, so that a socket
// that exists but does not answer is found out before the transport is chosen.
func DialSocket(ctx context.Context, path string) (*SocketTransport, error) {
	t := &SocketTransport{path: path}
	t.inv = t
	if err := t.connect(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// HandshakeError is a local API connection that was refused or did not complete the
// handshake: the socket is there, but the agent behind it cannot serve us.
type HandshakeError struct {
	Path string
	Err  error
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("nexigon agent socket %s: %v", e.Path, e.Err)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// connect dials and shakes hands; t.mu is held or t is not shared yet.
func (t *SocketTransport) connect(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", t.path)
	if err != nil {
		return &HandshakeError{Path: t.path, Err: fmt.Errorf("connect: %w", err)}
	}
	br := bufio.NewReader(conn)
	if err := handshake(ctx, conn, br); err != nil {
		conn.Close()
		return &HandshakeError{Path: t.path, Err: err}
	}
	t.conn, t.br = conn, br
	return nil
}

// handshake sends the client hello and reads the server's (spec §3.1; nexigon/nexigon
// crates/libs/nexigon-agent-api/src/client.rs `write_hello`, `read_hello`).
func handshake(ctx context.Context, conn net.Conn, br *bufio.Reader) error {
	setDeadline(ctx, conn)
	hello, _ := json.Marshal(map[string]any{"version": 1, "endpoint": "executor"})
	if err := WriteHandshake(conn, hello); err != nil {
		return fmt.Errorf("send handshake: %w", err)
	}
	body, err := ReadHandshake(br)
	if err != nil {
		return err
	}
	var reply struct {
		Result  string `json:"result"`
		Version int    `json:"version"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		return fmt.Errorf("handshake reply: %w", err)
	}
	if reply.Result != "Ok" {
		return fmt.Errorf("handshake refused: %s: %s", reply.Code, reply.Message)
	}
	return nil
}

func setDeadline(ctx context.Context, conn net.Conn) {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(2 * time.Minute))
	}
}

// invoke sends one request and decodes its ActionResult envelope, reconnecting as the type's
// comment says.
func (t *SocketTransport) invoke(ctx context.Context, action string, in, out any) error {
	input, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: encode input: %w", action, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	reused := t.conn != nil
	resp, err := t.roundTrip(ctx, action, input)
	if err != nil && reused && ctx.Err() == nil {
		// The connection may have ended while we were not using it; once more on a new one.
		resp, err = t.roundTrip(ctx, action, input)
	}
	if err != nil {
		return err
	}
	return decodeActionResult(action, resp, out)
}

// roundTrip sends one request and reads its response frame on the current connection, dialling
// one first when there is none. Any failure closes the connection: the stream is no longer in
// step.
func (t *SocketTransport) roundTrip(ctx context.Context, action string, input []byte) ([]byte, error) {
	if t.conn == nil {
		if err := t.connect(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", action, err)
		}
	}
	setDeadline(ctx, t.conn)
	if err := WriteRequest(t.conn, action, input); err != nil {
		t.drop()
		return nil, fmt.Errorf("%s: send: %w", action, err)
	}
	resp, err := ReadFrame(t.br)
	if err != nil {
		t.drop()
		return nil, fmt.Errorf("%s: %w", action, err)
	}
	return resp, nil
}

func (t *SocketTransport) drop() {
	if t.conn != nil {
		t.conn.Close()
		t.conn, t.br = nil, nil
	}
}

// decodeActionResult unpacks {"result":"Ok","value":…} into out or returns the ActionError of
// {"result":"Error","error":{…}}.
func decodeActionResult(action string, resp []byte, out any) error {
	var env struct {
		Result string           `json:"result"`
		Value  json.RawMessage  `json:"value"`
		Error  *hub.ActionError `json:"error"`
	}
	if err := json.Unmarshal(resp, &env); err != nil {
		return fmt.Errorf("%s: decode action result: %w", action, err)
	}
	switch env.Result {
	case "Ok":
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(env.Value, out); err != nil {
			return fmt.Errorf("%s: decode output: %w", action, err)
		}
		return nil
	case "Error":
		if env.Error == nil {
			return fmt.Errorf("%s: error result without error", action)
		}
		env.Error.Action = action
		return env.Error
	}
	return fmt.Errorf("%s: unknown action result %q", action, env.Result)
}

// Name implements Transport.
func (t *SocketTransport) Name() string { return NameSocket }

// Close implements Transport.
func (t *SocketTransport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		return nil
	}
	err := t.conn.Close()
	t.conn, t.br = nil, nil
	return err
}
