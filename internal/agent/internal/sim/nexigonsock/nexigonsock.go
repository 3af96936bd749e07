// Package nexigonsock is a stand-in of the Nexigon agent's local API socket for tests: it
// speaks the NXAC handshake and the framed executor protocol, answers actor_GetActor as the
// device, and forwards every other action to a Hub's HTTP actions API, wrapping the reply in
// an ActionResult envelope, as the real agent splices the stream onto its Hub connection.
package nexigonsock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/otabake/otabake/internal/agent/device"
)

// Server is a running stand-in.
type Server struct {
	ln       net.Listener
	hubURL   string
	token    string
	deviceID string
	exec     func(action string, input []byte) []byte
	wg       sync.WaitGroup

	mu         sync.Mutex
	actions    []string
	conns      map[net.Conn]bool
	handshakes int
	refuse     string // handshake error code to answer with; "" serves
}

// MaxClients is the agent's limit of concurrent local API clients; the connection over it is
// dropped before the handshake (nexigon/nexigon crates/apps/nexigon-agent/src/local_api.rs
// MAX_CONCURRENT_LOCAL_API_CLIENTS).
const MaxClients = 32

// Listen serves the stand-in on a Unix socket at path, forwarding actions to the Hub at hubURL.
func Listen(path, hubURL, token, deviceID string) (*Server, error) {
	return listen(path, &Server{hubURL: hubURL, token: token, deviceID: deviceID})
}

// ListenFunc serves the stand-in with exec answering every action but actor_GetActor: it
// returns the ActionResult frame of the action.
func ListenFunc(path, deviceID string, exec func(action string, input []byte) []byte) (*Server, error) {
	return listen(path, &Server{deviceID: deviceID, exec: exec})
}

func listen(path string, s *Server) (*Server, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	s.ln, s.conns = ln, map[net.Conn]bool{}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Handshakes counts the handshakes answered Ok.
func (s *Server) Handshakes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handshakes
}

// DropConnections closes every client connection, as the agent does when its Hub connection
// ends (the local connection is spliced onto it: local_api.rs `handle_client`). It returns
// when the connections are closed.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Refuse makes later handshakes fail with code (one of the agent's ServerErrorCode values:
// UnsupportedVersion, UnknownEndpoint, EndpointDisabled, InvalidRequest, Internal); "" serves
// again.
func (s *Server) Refuse(code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = code
}

// Actions returns the action names received so far.
func (s *Server) Actions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.actions...)
}

// Close stops the server and waits for its connections.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if len(s.conns) >= MaxClients {
			s.mu.Unlock()
			c.Close() // over the limit: dropped without a word, as the agent does
			continue
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			_ = s.serve(c)
		}()
	}
}

func (s *Server) serve(c net.Conn) error {
	// A bad magic or an over-long hello ends the connection without a reply
	// (local_api.rs `handle_client`: `anyhow::ensure!` on the magic and MAX_HANDSHAKE_LEN).
	body, err := device.ReadHandshake(c)
	if err != nil {
		return err
	}
	var hello struct {
		Version  int    `json:"version"`
		Endpoint string `json:"endpoint"`
	}
	reply := map[string]any{"result": "Ok", "version": 1}
	if err := json.Unmarshal(body, &hello); err != nil {
		reply = map[string]any{"result": "Error", "code": "InvalidRequest", "message": err.Error()}
	} else if hello.Version != 1 {
		reply = map[string]any{"result": "Error", "code": "UnsupportedVersion", "message": "version 1 only"}
	} else if hello.Endpoint != "executor" {
		reply = map[string]any{"result": "Error", "code": "UnknownEndpoint", "message": hello.Endpoint}
	}
	s.mu.Lock()
	if code := s.refuse; code != "" && reply["result"] == "Ok" {
		// e.g. Internal "hub executor is unavailable" while the agent has no Hub connection
		// (local_api.rs `handle_client`), EndpointDisabled when the local API is off.
		reply = map[string]any{"result": "Error", "code": code, "message": "refused by the test"}
	}
	if reply["result"] == "Ok" {
		s.handshakes++
	}
	s.mu.Unlock()
	rb, _ := json.Marshal(reply)
	// The reply rules are the agent's: nexigon/nexigon crates/apps/nexigon-agent/src/local_api.rs
	// `handle_client` (version 1 only, endpoint "executor" only, malformed hello is
	// InvalidRequest) and crates/libs/nexigon-agent-api/schemas/handshake.sidex.
	if err := device.WriteHandshake(c, rb); err != nil || reply["result"] != "Ok" {
		return err
	}
	for {
		action, input, err := device.ReadRequest(c)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.actions = append(s.actions, action)
		s.mu.Unlock()
		if err := device.WriteFrame(c, s.execute(action, input)); err != nil {
			return err
		}
	}
}

func (s *Server) execute(action string, input []byte) []byte {
	if action == "actor_GetActor" {
		out, _ := json.Marshal(map[string]any{"result": "Ok", "value": map[string]any{
			"actor": map[string]string{"actor": "Device", "deviceId": s.deviceID, "tokenId": "deployment_id_sim"},
		}})
		return out
	}
	if s.exec != nil {
		return s.exec(action, input)
	}
	req, err := http.NewRequest(http.MethodPost, s.hubURL+"/api/v1/actions/invoke/"+action, bytes.NewReader(input))
	if err != nil {
		return errorResult("Internal", err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return errorResult("Internal", err.Error())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, device.MaxPayloadLen))
	if err != nil {
		return errorResult("Internal", err.Error())
	}
	if resp.StatusCode/100 != 2 {
		if !json.Valid(body) {
			return errorResult("Internal", fmt.Sprintf("HTTP %d", resp.StatusCode))
		}
		return append(append([]byte(`{"result":"Error","error":`), body...), '}')
	}
	return append(append([]byte(`{"result":"Ok","value":`), bytes.TrimSpace(body)...), '}')
}

func errorResult(kind, msg string) []byte {
	out, _ := json.Marshal(map[string]any{"result": "Error", "error": map[string]string{"kind": kind, "message": msg}})
	return out
}
