package device

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/local"
)

func TestHubTransport(t *testing.T) {
	ctx := context.Background()
	store, err := local.Open(filepath.Join(t.TempDir(), "hub"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, _, err := store.Init(ctx, "repo", "pkg"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewHub(store, "").DeviceID(ctx); err == nil || !strings.Contains(err.Error(), "configure the device id") {
		t.Fatalf("DeviceID with an organization token: %v", err)
	}
	tr := NewHub(store, "d_Lab1111111111111111111")
	if err := tr.SetProperty(ctx, "dev.nexigon.ota.status", json.RawMessage(`{"state":"idle"}`)); err != nil {
		t.Fatal(err)
	}
	v, found, err := tr.GetProperty(ctx, "dev.nexigon.ota.status")
	if err != nil || !found || !strings.Contains(string(v), `"idle"`) {
		t.Fatalf("GetProperty = %s %v %v", v, found, err)
	}
	p := hub.VersionPath{Repository: "repo", Package: "pkg", Tag: "stable"}
	if _, found, err := tr.VersionDetails(ctx, p); err != nil || found {
		t.Fatalf("VersionDetails = %v %v, want not found", found, err)
	}
	if _, err := tr.IssueDownloadURL(ctx, p, "sys.rugixb"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("IssueDownloadURL = %v", err)
	}
	if err := tr.PublishEvent(ctx, hub.Event{EventID: "d_ev_20260101-0000-abcdefgh", Severity: hub.SeverityInfo, Body: json.RawMessage(`"x"`), Attributes: map[string]json.RawMessage{}}); err != nil {
		t.Fatal(err)
	}
}
