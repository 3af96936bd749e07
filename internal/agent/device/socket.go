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
type SocketTransport struct {
	actionTransport
	path string
	mu   sync.Mutex
	conn net.Conn
	br   *bufio.Reader
}

// DialSocket connects to the local API at path and performs the handshake.
func DialSocket(ctx context.Context, path string) (*SocketTransport, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to nexigon agent socket %s: %w", path, err)
	}
	t := &SocketTransport{path: path, conn: conn, br: bufio.NewReader(conn)}
	t.inv = t
	if err := t.handshake(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return t, nil
}

func (t *SocketTransport) handshake(ctx context.Context) error {
	t.deadline(ctx)
	hello, _ := json.Marshal(map[string]any{"version": 1, "endpoint": "executor"})
	if err := WriteHandshake(t.conn, hello); err != nil {
		return fmt.Errorf("nexigon agent socket %s: send handshake: %w", t.path, err)
	}
	body, err := ReadHandshake(t.br)
	if err != nil {
		return fmt.Errorf("nexigon agent socket %s: %w", t.path, err)
	}
	var reply struct {
		Result  string `json:"result"`
		Version int    `json:"version"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		return fmt.Errorf("nexigon agent socket %s: handshake reply: %w", t.path, err)
	}
	if reply.Result != "Ok" {
		return fmt.Errorf("nexigon agent socket %s: handshake refused: %s: %s", t.path, reply.Code, reply.Message)
	}
	return nil
}

func (t *SocketTransport) deadline(ctx context.Context) {
	if dl, ok := ctx.Deadline(); ok {
		t.conn.SetDeadline(dl)
	} else {
		t.conn.SetDeadline(time.Now().Add(2 * time.Minute))
	}
}

// invoke sends one request and decodes its ActionResult envelope.
func (t *SocketTransport) invoke(ctx context.Context, action string, in, out any) error {
	input, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: encode input: %w", action, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deadline(ctx)
	if err := WriteRequest(t.conn, action, input); err != nil {
		return fmt.Errorf("%s: send: %w", action, err)
	}
	resp, err := ReadFrame(t.br)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	return decodeActionResult(action, resp, out)
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
func (t *SocketTransport) Close() error { return t.conn.Close() }
