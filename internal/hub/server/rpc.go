package server

// nexigon-rpc on the "executor" channel (spec §1.3, §1.4 ActionResult): the client writes
// u16 name length, name, u32 input length, JSON input (big-endian), and reads u32 output length
// and a JSON ActionResult, {"result":"Ok","value":…} or {"result":"Error","error":{…}}. One action
// at a time per channel, as upstream's ClientExecutor uses it. Written from
//   nexigon/nexigon@33fb37c crates/libs/nexigon-rpc/src/lib.rs (execute, read_action,
//   write_action_result; MAX_ACTION_NAME_SIZE, MAX_INPUT_SIZE, MAX_OUTPUT_SIZE)
//   nexigon/nexigon@33fb37c crates/libs/nexigon-client/src/lib.rs (connect_executor)
// Actions run through the same table as the HTTP API (actions.go), so both transports answer
// alike.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/otabake/otabake/internal/hub"
)

// rpcExecutor is the channel endpoint that carries actions.
const rpcExecutor = "executor"

// maxOutput is the largest ActionResult a client accepts (MAX_OUTPUT_SIZE).
const maxOutput = 8 << 20

// rpcAction is one action read from a channel. Err, when set, is the answer to give instead
// of running it; Fatal means the stream cannot continue after that answer.
type rpcAction struct {
	Name  string
	Input []byte
	Err   *hub.ActionError
	Fatal bool
}

// readRPCAction reads one action. io.EOF means the client ended the channel between actions.
// started is called once the first bytes of an action have arrived (to bound the rest). The
// input is read as it arrives, never allocated from the declared size up front.
func readRPCAction(r io.Reader, maxInput int64, started func()) (rpcAction, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:2]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return rpcAction{}, fmt.Errorf("action name length: %w", err)
		}
		return rpcAction{}, err // io.EOF: a clean end
	}
	if started != nil {
		started()
	}
	nameLen := binary.BigEndian.Uint16(hdr[:2])
	if nameLen > maxActionName {
		return rpcAction{Err: hub.Errorf(hub.KindInvalid, "action name is longer than %d bytes", maxActionName), Fatal: true}, nil
	}
	name := make([]byte, nameLen)
	if _, err := io.ReadFull(r, name); err != nil {
		return rpcAction{}, fmt.Errorf("action name: %w", noEOF(err))
	}
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return rpcAction{}, fmt.Errorf("action input length: %w", noEOF(err))
	}
	inputLen := int64(binary.BigEndian.Uint32(hdr[:4]))
	if inputLen > maxInput {
		return rpcAction{Name: string(name), Err: hub.Errorf(hub.KindInvalid, "%s: input is larger than %d bytes", printable(name), maxInput), Fatal: true}, nil
	}
	var in bytes.Buffer
	if _, err := io.CopyN(&in, r, inputLen); err != nil {
		return rpcAction{}, fmt.Errorf("action input: %w", noEOF(err))
	}
	a := rpcAction{Name: string(name), Input: in.Bytes()}
	if !utf8.Valid(name) {
		a.Err = hub.Errorf(hub.KindInvalid, "action name is not valid UTF-8")
	}
	return a, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// printable shortens a client-chosen name for messages.
func printable(name []byte) string {
	s := string(name)
	if !utf8.ValidString(s) {
		return fmt.Sprintf("%q", s)
	}
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return s
}

// rpcResult is ActionResult (errors.sidex; spec §1.4).
type rpcResult struct {
	Result string           `json:"result"`
	Value  json.RawMessage  `json:"value,omitempty"`
	Error  *hub.ActionError `json:"error,omitempty"`
}

// encodeRPCResult frames a result: u32 length, then the JSON.
func encodeRPCResult(res rpcResult) []byte {
	data, err := json.Marshal(res)
	if err != nil { // cannot happen: the value is already JSON
		data, _ = json.Marshal(rpcResult{Result: "Error", Error: hub.Errorf(hub.KindInternal, "encode result: %v", err)})
	}
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(data)), uint32(len(data)))
	return append(out, data...)
}

func rpcError(ae *hub.ActionError) rpcResult {
	return rpcResult{Result: "Error", Error: &hub.ActionError{Kind: ae.Kind, Message: ae.Message}}
}

// invokeRPC runs one action through the HTTP API's action table and returns its ActionResult.
// Errors map as writeActionError maps them for HTTP.
func (s *server) invokeRPC(ctx context.Context, base, name string, input []byte) rpcResult {
	act, ok := actions[name]
	if !ok {
		return rpcError(hub.Errorf(hub.KindInvalid, "unknown action %q", printable([]byte(name))))
	}
	out, err := act(context.WithValue(ctx, baseURLKey{}, base), s, input)
	if err == nil {
		var data []byte
		data, err = json.Marshal(out)
		if err == nil {
			if len(data) > maxOutput-64 {
				return rpcError(hub.Errorf(hub.KindInternal, "%s: output is larger than %d bytes", name, maxOutput))
			}
			return rpcResult{Result: "Ok", Value: data}
		}
		err = fmt.Errorf("encode output: %w", err)
	}
	var ae *hub.ActionError
	switch {
	case errors.As(err, &ae):
		return rpcError(ae)
	case errors.Is(err, context.Canceled):
		return rpcError(hub.Errorf(hub.KindInternal, "%s: request cancelled", name))
	}
	s.log.Error("action failed", "action", name, "transport", "websocket", "err", err)
	return rpcError(hub.Errorf(hub.KindInternal, "%s: %v", name, err))
}

// serveExecutor answers actions on one executor channel until the client closes it.
func (s *server) serveExecutor(ctx context.Context, ch *muxChan, base string) error {
	for {
		ch.setReadTimeout(0) // between actions a channel may idle as long as the connection lives
		a, err := readRPCAction(ch, s.limits.MaxInputBytes, func() { ch.setReadTimeout(s.limits.IOTimeout) })
		if err != nil {
			return err
		}
		var res rpcResult
		if a.Err != nil {
			res = rpcError(a.Err)
		} else {
			res = s.invokeRPC(ctx, base, a.Name, a.Input)
			s.log.Debug("action", "transport", "websocket", "action", a.Name, "result", res.Result)
		}
		if _, err := ch.Write(encodeRPCResult(res)); err != nil {
			return err
		}
		if a.Fatal {
			return errors.New(a.Err.Message)
		}
	}
}
