package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/agent/device"
	"github.com/otabake/otabake/internal/agent/engine"
	"github.com/otabake/otabake/internal/hub"
)

// hubAnswers is a transport whose Hub says v2 is at stable, with one bundle whose hash and
// download URL each test case chooses.
type hubAnswers struct {
	url, hash string
	props     map[string]json.RawMessage
	events    []hub.Event
}

func (h *hubAnswers) Name() string                             { return device.NameHub }
func (h *hubAnswers) DeviceID(context.Context) (string, error) { return "d_test", nil }
func (h *hubAnswers) Close() error                             { return nil }
func (h *hubAnswers) PublishEvent(_ context.Context, e hub.Event) error {
	h.events = append(h.events, e)
	return nil
}
func (h *hubAnswers) GetProperty(_ context.Context, name string) (json.RawMessage, bool, error) {
	v, ok := h.props[name]
	return v, ok, nil
}
func (h *hubAnswers) SetProperty(_ context.Context, name string, v json.RawMessage) error {
	h.props[name] = v
	return nil
}
func (h *hubAnswers) VersionDetails(context.Context, hub.VersionPath) (*hub.VersionDetails, bool, error) {
	meta, _ := json.Marshal(map[string]any{"rugix": map[string]any{"bundleHash": h.hash}, "version": "v2"})
	return &hub.VersionDetails{Metadata: json.RawMessage(`{"imageVersion":"v2"}`),
		Assets: []hub.VersionAsset{{Filename: "sys.rugixb", Status: hub.AssetAvailable, Metadata: meta}}}, true, nil
}
func (h *hubAnswers) IssueDownloadURL(context.Context, hub.VersionPath, string) (string, error) {
	return h.url, nil
}

// recordingEngine is Rugix on a device in boot group a, recording whether anything was
// installed.
type recordingEngine struct{ installs []string }

func (e *recordingEngine) Name() string         { return "rugix" }
func (e *recordingEngine) BundleSuffix() string { return ".rugixb" }
func (e *recordingEngine) BootState(context.Context) (engine.BootState, error) {
	return engine.BootState{ActiveGroup: "a", DefaultGroup: "a", SpareGroup: "b"}, nil
}
func (e *recordingEngine) Commit(context.Context) error { return nil }
func (e *recordingEngine) Install(_ context.Context, url string, _ engine.InstallOptions) error {
	e.installs = append(e.installs, url)
	return nil
}
func (e *recordingEngine) RebootSpare(context.Context) error   { return nil }
func (e *recordingEngine) RebootDefault(context.Context) error { return nil }
func (e *recordingEngine) DescribeInstall(_ context.Context, url string, _ engine.InstallOptions) ([]string, error) {
	return []string{"rugix-ctrl", "update", "install", "--", url}, nil
}

// TestRefusesUntrustedHubAnswers: bundle URLs and hashes from the Hub that are not what the
// agent expects end in state failed with the reason, and the update tool never sees them.
func TestRefusesUntrustedHubAnswers(t *testing.T) {
	const good = "sha512-256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name, hubURL, url, hash, want string
	}{
		{name: "https accepted", hubURL: "https://eu.nexigon.cloud", url: "https://s3.example/b?X-Amz-Signature=s", hash: good},
		{name: "http from an http Hub", hubURL: "http://127.0.0.1:8080", url: "http://127.0.0.1:8080/blobs/x", hash: good},
		{name: "file URL", hubURL: "http://127.0.0.1:8080", url: "file:///var/evil.rugixb", hash: good, want: `scheme "file"`},
		{name: "ftp URL", hubURL: "https://eu.nexigon.cloud", url: "ftp://example.com/b.rugixb", hash: good, want: `scheme "ftp"`},
		{name: "http with an https Hub", hubURL: "https://eu.nexigon.cloud", url: "http://s3.example/b?X-Amz-Signature=SECRET", hash: good, want: "plain http but the Hub is not reached over http"},
		{name: "http with an unknown Hub", url: "http://s3.example/b", hash: good, want: "only https bundle URLs"},
		{name: "URL like an option", hubURL: "https://h", url: "--insecure-skip-bundle-verification", hash: good, want: "starts with '-'"},
		{name: "hash too short", hubURL: "https://h", url: "https://s3.example/b", hash: good[:len(good)-2], want: "needs 64 hex digits, got 62"},
		{name: "hash too long", hubURL: "https://h", url: "https://s3.example/b", hash: good + "0", want: "needs 64 hex digits, got 65"},
		{name: "hash not hex", hubURL: "https://h", url: "https://s3.example/b", hash: good[:len(good)-1] + "x", want: "not hexadecimal"},
		{name: "hash option", hubURL: "https://h", url: "https://s3.example/b", hash: "--reboot=yes", want: "want <algorithm>:<hex>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for p, data := range map[string]string{
				BuildInfoFile: `{"name":"sys","release":{"version":"v1"}}`,
				DefaultsFile:  `{"path":"repo/pkg/stable","rugix":{"useBundleHash":true}}`,
				BootIDFile:    "boot-1\n",
			} {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, p), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tr := &hubAnswers{url: tc.url, hash: tc.hash, props: map[string]json.RawMessage{}}
			eng := &recordingEngine{}
			a := &Agent{Root: root, Engine: eng, Transport: tr, HubURL: tc.hubURL}
			res, err := a.Check(context.Background(), CheckOptions{})
			if tc.want == "" {
				if err != nil || len(eng.installs) != 1 {
					t.Fatalf("check: %v, installs %v; want one install", err, eng.installs)
				}
				return
			}
			if !errors.Is(err, ErrCheckFailed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("check: %v, want a failure containing %q", err, tc.want)
			}
			if len(eng.installs) != 0 {
				t.Fatalf("the update tool was given %q", eng.installs)
			}
			if res.Status.State != StateFailed || res.Status.LastError == nil || !strings.Contains(*res.Status.LastError, tc.want) {
				t.Errorf("status %+v, want failed with %q", res.Status, tc.want)
			}
			var st Status
			if err := json.Unmarshal(tr.props[StatusProperty], &st); err != nil || st.State != StateFailed {
				t.Errorf("published status %s (%v), want failed", tr.props[StatusProperty], err)
			}
			last := tr.events[len(tr.events)-1]
			if !strings.Contains(string(last.Body), "update failed") || !strings.Contains(string(last.Attributes["error"]), "refusing to install sys.rugixb") {
				t.Errorf("last event %s %v, want update failed with the reason", last.Body, last.Attributes)
			}
			if strings.Contains(*res.Status.LastError, "SECRET") {
				t.Errorf("the reason leaks the presigned query: %s", *res.Status.LastError)
			}
		})
	}
}

func TestHubURLFor(t *testing.T) {
	root := t.TempDir()
	a := &Agent{Root: root}
	if got := a.HubURLFor(device.NameSocket, ""); got != "" {
		t.Errorf("no nexigon-agent config: %q, want unknown", got)
	}
	p := filepath.Join(root, NexigonAgentConfig)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("hub-url = \"http://hub.lab:8080\"\ntoken = \"deployment_x\"\nfingerprint-script = \"fp.sh\"\n[local-api]\nenabled = true\n"), 0o600)
	for _, tc := range []struct{ transport, hubURL, want string }{
		{device.NameSocket, "", "http://hub.lab:8080"},
		{device.NameCLI, "", "http://hub.lab:8080"},
		{device.NameHub, "https://own.hub", "https://own.hub"},
		{"other", "https://own.hub", ""},
	} {
		if got := a.HubURLFor(tc.transport, tc.hubURL); got != tc.want {
			t.Errorf("HubURLFor(%s, %q) = %q, want %q", tc.transport, tc.hubURL, got, tc.want)
		}
	}
}
