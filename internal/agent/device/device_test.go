package device

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/hub"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteRequest(&buf, "devices_GetProperty", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0, 19}, "devices_GetProperty"...)
	want = append(want, 0, 0, 0, 7)
	want = append(want, `{"a":1}`...)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("request bytes %q, want %q", buf.Bytes(), want)
	}
	action, input, err := ReadRequest(&buf)
	if err != nil || action != "devices_GetProperty" || string(input) != `{"a":1}` {
		t.Fatalf("ReadRequest = %q %q %v", action, input, err)
	}
	if _, _, err := ReadRequest(&buf); !errors.Is(err, io.EOF) {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
	buf.Reset()
	WriteHandshake(&buf, []byte(`{"version":1}`))
	if !bytes.HasPrefix(buf.Bytes(), []byte("NXAC\x00\x00\x00\x0d")) {
		t.Fatalf("handshake bytes %q", buf.Bytes())
	}
}

func TestFrameErrors(t *testing.T) {
	big := binary.BigEndian.AppendUint32(nil, MaxPayloadLen+1)
	for _, tc := range []struct {
		name string
		read func(io.Reader) error
		in   []byte
		want string
	}{
		{"bad magic", func(r io.Reader) error { _, err := ReadHandshake(r); return err }, []byte("NXAB\x00\x00\x00\x00"), "bad magic"},
		{"handshake too long", func(r io.Reader) error { _, err := ReadHandshake(r); return err }, []byte("NXAC\x00\x01\x00\x01"), "exceeds"},
		{"truncated handshake", func(r io.Reader) error { _, err := ReadHandshake(r); return err }, []byte("NXAC\x00\x00\x00\x05{}"), "unexpected EOF"},
		{"frame too long", func(r io.Reader) error { _, err := ReadFrame(r); return err }, big, "exceeds"},
		{"truncated frame", func(r io.Reader) error { _, err := ReadFrame(r); return err }, []byte("\x00\x00\x10\x00abc"), "unexpected EOF"},
		{"empty action", func(r io.Reader) error { _, _, err := ReadRequest(r); return err }, []byte("\x00\x00"), "action name length 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.read(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// fakeAgent serves a socket with canned action results, checking the handshake.
func fakeAgent(t *testing.T, reply string, results map[string]string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nxac")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		hello, err := ReadHandshake(c)
		if err != nil || !json.Valid(hello) || !strings.Contains(string(hello), `"endpoint":"executor"`) {
			t.Errorf("hello %q: %v", hello, err)
			return
		}
		WriteHandshake(c, []byte(reply))
		for {
			action, _, err := ReadRequest(c)
			if err != nil {
				return
			}
			res, ok := results[action]
			if !ok {
				res = `{"result":"Error","error":{"kind":"Invalid","message":"unknown action"}}`
			}
			WriteFrame(c, []byte(res))
		}
	}()
	return path
}

func TestSocketTransport(t *testing.T) {
	ctx := context.Background()
	path := fakeAgent(t, `{"result":"Ok","version":1}`, map[string]string{
		"actor_GetActor":                         `{"result":"Ok","value":{"actor":{"actor":"Device","deviceId":"d_x","tokenId":"deployment_id_y"}}}`,
		"devices_GetProperty":                    `{"result":"Ok","value":{"result":"Found","name":"p","value":{"path":"r/p/t"},"protected":false,"version":3}}`,
		"devices_SetProperty":                    `{"result":"Ok","value":{"result":"Set"}}`,
		"devices_PublishEvents":                  `{"result":"Ok","value":{}}`,
		"repositories_ResolveVersionByPath":      `{"result":"Ok","value":{"result":"NotFound"}}`,
		"repositories_ResolveVersionAssetByPath": `{"result":"Ok","value":{"result":"Found","assetId":"repo_a_1"}}`,
	})
	tr, err := Open(ctx, Config{Transport: NameAuto, SocketPath: path, NexigonAgent: "nexigon-agent-not-installed"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.Name() != NameSocket {
		t.Fatalf("auto picked %s", tr.Name())
	}
	if id, err := tr.DeviceID(ctx); err != nil || id != "d_x" {
		t.Fatalf("DeviceID = %q, %v", id, err)
	}
	v, found, err := tr.GetProperty(ctx, "p")
	if err != nil || !found || string(v) != `{"path":"r/p/t"}` {
		t.Fatalf("GetProperty = %s %v %v", v, found, err)
	}
	if err := tr.SetProperty(ctx, "p", json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := tr.PublishEvent(ctx, hub.Event{EventID: "d_ev_1", Severity: hub.SeverityInfo}); err != nil {
		t.Fatal(err)
	}
	if _, found, err := tr.VersionDetails(ctx, hub.VersionPath{Repository: "r", Package: "p", Tag: "t"}); err != nil || found {
		t.Fatalf("VersionDetails = %v %v, want not found", found, err)
	}
	_, err = tr.IssueDownloadURL(ctx, hub.VersionPath{Repository: "r", Package: "p", Tag: "t"}, "f")
	if !hub.IsKind(err, hub.KindInvalid) || !strings.Contains(err.Error(), "repositories_IssueAssetDownloadUrl") {
		t.Fatalf("IssueDownloadURL error = %v, want the ActionError of the action", err)
	}
}

func TestSocketHandshakeRefused(t *testing.T) {
	path := fakeAgent(t, `{"result":"Error","code":"EndpointDisabled","message":"local API disabled"}`, nil)
	_, err := DialSocket(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "EndpointDisabled") {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenWithoutTransport(t *testing.T) {
	_, err := Open(context.Background(), Config{SocketPath: filepath.Join(t.TempDir(), "none"), NexigonAgent: "nexigon-agent-not-installed"})
	if err == nil || !strings.Contains(err.Error(), "no Hub transport") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Open(context.Background(), Config{Transport: "carrier-pigeon"}); err == nil {
		t.Fatal("unknown transport accepted")
	}
}

func TestParsePropertyOutput(t *testing.T) {
	v, found, err := ParsePropertyOutput([]byte(`{"result":"Found","name":"n","value":[1],"protected":false,"version":1,"lastUpdated":"2026-01-01T00:00:00Z"}` + "\n"))
	if err != nil || !found || string(v) != "[1]" {
		t.Fatalf("%s %v %v", v, found, err)
	}
	if _, found, err := ParsePropertyOutput([]byte(`{"result":"NotFound"}`)); err != nil || found {
		t.Fatalf("%v %v", found, err)
	}
	if _, _, err := ParsePropertyOutput([]byte(`garbage`)); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestCLITransport(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	script := `#!/bin/sh
echo "$@" >> ` + log + `
case "$1 $2" in
"device id") echo d_cli ;;
"device properties") echo '{"result":"NotFound"}' ;;
"repositories versions") echo "package version $4 not found" >&2; exit 1 ;;
"repositories issue-url") printf '{\n  "url": "http://x/y"\n}' ;;
"events emit") ;;
*) echo "unknown $*" >&2; exit 2 ;;
esac
`
	exe := filepath.Join(dir, "nexigon-agent")
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tr := NewCLI(exe)
	if id, err := tr.DeviceID(ctx); err != nil || id != "d_cli" {
		t.Fatalf("DeviceID %q %v", id, err)
	}
	if _, found, err := tr.GetProperty(ctx, "p"); err != nil || found {
		t.Fatalf("GetProperty %v %v", found, err)
	}
	p := hub.VersionPath{Repository: "r", Package: "p", Tag: "t"}
	if _, found, err := tr.VersionDetails(ctx, p); err != nil || found {
		t.Fatalf("VersionDetails %v %v", found, err)
	}
	if u, err := tr.IssueDownloadURL(ctx, p, "s.rugixb"); err != nil || u != "http://x/y" {
		t.Fatalf("IssueDownloadURL %q %v", u, err)
	}
	ev := hub.Event{Severity: hub.SeverityWarning, Category: "ota", Body: json.RawMessage(`"hello"`),
		Attributes: map[string]json.RawMessage{"b": json.RawMessage(`"2"`), "a": json.RawMessage(`"1"`)}}
	if err := tr.PublishEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(log)
	if !strings.Contains(string(data), `events emit --severity warning --category ota --attribute a="1" --attribute b="2" -- "hello"`) {
		t.Errorf("calls:\n%s", data)
	}
}
