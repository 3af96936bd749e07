package device_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/agent/device"
	"github.com/otabake/otabake/internal/agent/internal/sim/nexigonagent"
	"github.com/otabake/otabake/internal/agent/internal/sim/nexigonsock"
	"github.com/otabake/otabake/internal/hub"
)

// doubleEnv makes the test binary run as the nexigon-agent stand-in.
const doubleEnv = "OTABAKE_TEST_AS_NEXIGON_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(doubleEnv) == "1" {
		os.Exit(nexigonagent.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// cliDouble writes a nexigon-agent executable that runs the stand-in of release; it returns
// its path and the files of the emitted events and of the calls.
func cliDouble(t *testing.T, release string) (exe, events, calls string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	events, calls = filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "calls")
	exe = filepath.Join(dir, "nexigon-agent")
	script := "#!/bin/sh\n" +
		doubleEnv + "=1 " + nexigonagent.ReleaseEnv + "=" + release + " " + nexigonagent.EventsEnv + "=" + events + " " +
		nexigonagent.CallsEnv + "=" + calls + " " + nexigonagent.DeviceEnv + "=d_cli exec " + self + " \"$@\"\n"
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return exe, events, calls
}

func testEvent(id, msg string) hub.Event {
	body, _ := json.Marshal(msg)
	return hub.Event{EventID: id, Category: "ota", Severity: hub.SeverityInfo, Body: body,
		Attributes: map[string]json.RawMessage{"k": json.RawMessage(`"v"`)},
		EmittedAt:  time.Date(2026, 5, 1, 10, 20, 30, 0, time.UTC)}
}

// TestCLIEmittedAtFallback: events through an agent without --emitted-at arrive; the usage
// error is met once per process, later events go without the option straight away.
func TestCLIEmittedAtFallback(t *testing.T) {
	for _, tc := range []struct {
		release   string
		wantCalls int // nexigon-agent runs for three events
		wantFlag  bool
	}{
		{nexigonagent.Recent, 3, true},
		{nexigonagent.V05, 4, false},
	} {
		t.Run(tc.release, func(t *testing.T) {
			exe, events, calls := cliDouble(t, tc.release)
			tr := device.NewCLI(exe)
			ids := []string{"d_ev_20260501-1020-aaaaaaaa", "d_ev_20260501-1020-bbbbbbbb", "d_ev_20260501-1020-cccccccc"}
			for i, id := range ids {
				if err := tr.PublishEvent(context.Background(), testEvent(id, "m"+string(rune('0'+i)))); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
			}
			got, err := nexigonagent.ReadEvents(events)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(ids) {
				t.Fatalf("%d events arrived, want %d", len(got), len(ids))
			}
			for i, ev := range got {
				var id string
				_ = json.Unmarshal(ev.Attributes[device.AttrEventID], &id)
				if id != ids[i] || ev.Severity != "Info" || ev.Category != "ota" || string(ev.Attributes["k"]) != `"v"` {
					t.Errorf("event %d: %+v", i, ev)
				}
				_, hasTimeAttr := ev.Attributes[device.AttrEmittedAt]
				if tc.wantFlag && (!ev.EmittedAt.Equal(testEvent("", "").EmittedAt) || hasTimeAttr) {
					t.Errorf("event %d: emittedAt %v, attribute %v; want the option used", i, ev.EmittedAt, hasTimeAttr)
				}
				if !tc.wantFlag && string(ev.Attributes[device.AttrEmittedAt]) != `"2026-05-01T10:20:30Z"` {
					t.Errorf("event %d: attributes %v; want the emission time as an attribute", i, ev.Attributes)
				}
			}
			data, _ := os.ReadFile(calls)
			if n := strings.Count(string(data), "\n"); n != tc.wantCalls {
				t.Errorf("%d calls, want %d:\n%s", n, tc.wantCalls, data)
			}
		})
	}
}

// TestCLIDoubleIsStrict: the stand-in refuses what the real command refuses.
func TestCLIDoubleIsStrict(t *testing.T) {
	exe, _, _ := cliDouble(t, nexigonagent.V05)
	tr := device.NewCLI(exe)
	for _, tc := range []struct {
		name string
		ev   hub.Event
		want string
	}{
		{"uppercase severity is not a severity", hub.Event{Severity: "Bogus", Body: json.RawMessage(`1`)}, "invalid value"},
		{"body must be JSON", hub.Event{Severity: hub.SeverityInfo, Body: json.RawMessage(`not json`)}, "unable to parse event body"},
		{"attribute value must be JSON", hub.Event{Severity: hub.SeverityInfo, Body: json.RawMessage(`1`), Attributes: map[string]json.RawMessage{"a": json.RawMessage(`x`)}}, "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tr.PublishEvent(context.Background(), tc.ev); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// socketHub answers actions for a stand-in socket and records published event IDs.
type socketHub struct{ events chan string }

func (h *socketHub) exec(action string, input []byte) []byte {
	switch action {
	case "devices_PublishEvents":
		var in struct {
			Events []hub.Event `json:"events"`
		}
		if json.Unmarshal(input, &in) != nil {
			return []byte(`{"result":"Error","error":{"kind":"Invalid","message":"bad input"}}`)
		}
		for _, ev := range in.Events {
			h.events <- ev.EventID
		}
		return []byte(`{"result":"Ok","value":{}}`)
	case "devices_SetProperty":
		return []byte(`{"result":"Ok","value":{"result":"Set"}}`)
	}
	return []byte(`{"result":"Error","error":{"kind":"Invalid","message":"unknown action"}}`)
}

func socketPath(t *testing.T) string {
	dir, err := os.MkdirTemp("", "nxac")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

// TestSocketReconnects: a connection the agent drops during a long install is dialled again.
func TestSocketReconnects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drops int // drops between the calls
	}{
		{"no drop", 0},
		{"one drop mid-install", 1},
		{"a drop before every call", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &socketHub{events: make(chan string, 16)}
			path := socketPath(t)
			srv, err := nexigonsock.ListenFunc(path, "d_sock", h.exec)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			ctx := context.Background()
			tr, err := device.Open(ctx, device.Config{SocketPath: path, NexigonAgent: "nexigon-agent-not-installed"})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if err := tr.SetProperty(ctx, "dev.nexigon.ota.status", json.RawMessage(`{"state":"installing"}`)); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if i < tc.drops || (tc.drops == 1 && i == 0) {
					srv.DropConnections() // the install runs; the agent's Hub connection restarts
				}
				id := "d_ev_20260501-1020-" + strings.Repeat(string(rune('a'+i)), 8)
				if err := tr.PublishEvent(ctx, testEvent(id, "x")); err != nil {
					t.Fatalf("publish after %d drop(s): %v", tc.drops, err)
				}
				if got := <-h.events; got != id {
					t.Fatalf("event %q arrived, want %q", got, id)
				}
			}
			if got, want := srv.Handshakes(), 1+tc.drops; got != want {
				t.Errorf("%d handshakes, want %d", got, want)
			}
		})
	}
}

// TestSocketHandshakeFallsBackToCLI: a socket that exists but cannot be used gives way to the
// nexigon-agent command line in auto mode, and is an error when the socket is configured.
func TestSocketHandshakeFallsBackToCLI(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"local API disabled", func(t *testing.T, path string) { refusing(t, path, "EndpointDisabled") }},
		{"agent not connected to the Hub", func(t *testing.T, path string) { refusing(t, path, "Internal") }},
		{"stale socket file", func(t *testing.T, path string) {
			srv, err := nexigonsock.ListenFunc(path, "d_sock", nil)
			if err != nil {
				t.Fatal(err)
			}
			// Closing the listener removes the file; put a dead socket file back.
			srv.Close()
			staleSocket(t, path)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := socketPath(t)
			tc.setup(t, path)
			exe, events, _ := cliDouble(t, nexigonagent.V05)
			ctx := context.Background()
			tr, err := device.Open(ctx, device.Config{SocketPath: path, NexigonAgent: exe})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if tr.Name() != device.NameCLI {
				t.Fatalf("transport %s, want %s", tr.Name(), device.NameCLI)
			}
			if err := tr.PublishEvent(ctx, testEvent("d_ev_20260501-1020-zzzzzzzz", "via cli")); err != nil {
				t.Fatal(err)
			}
			if got, err := nexigonagent.ReadEvents(events); err != nil || len(got) != 1 || string(got[0].Body) != `"via cli"` {
				t.Fatalf("events %+v %v", got, err)
			}
			if _, err := device.Open(ctx, device.Config{Transport: device.NameSocket, SocketPath: path, NexigonAgent: exe}); err == nil {
				t.Error("an explicitly configured socket fell back")
			}
		})
	}
}

func refusing(t *testing.T, path, code string) {
	srv, err := nexigonsock.ListenFunc(path, "d_sock", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Refuse(code)
	t.Cleanup(func() { srv.Close() })
}
