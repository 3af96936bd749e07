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
	wg       sync.WaitGroup

	mu      sync.Mutex
	actions []string
}

// Listen serves the stand-in on a Unix socket at path.
func Listen(path, hubURL, token, deviceID string) (*Server, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, hubURL: hubURL, token: token, deviceID: deviceID}
	s.wg.Add(1)
	go s.accept()
	return s, nil
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
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			_ = s.serve(c)
		}()
	}
}

func (s *Server) serve(c net.Conn) error {
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
	rb, _ := json.Marshal(reply)
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
