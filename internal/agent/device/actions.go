package device

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/otabake/otabake/internal/hub"
)

// invoker executes one Hub action with JSON input and output.
type invoker interface {
	invoke(ctx context.Context, action string, in any, out any) error
}

// actionTransport implements Transport on top of raw Hub actions (the socket transport).
type actionTransport struct {
	inv      invoker
	mu       sync.Mutex
	deviceID string
}

func (t *actionTransport) DeviceID(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deviceID != "" {
		return t.deviceID, nil
	}
	var out struct {
		Actor hub.Actor `json:"actor"`
	}
	if err := t.inv.invoke(ctx, "actor_GetActor", struct{}{}, &out); err != nil {
		return "", err
	}
	if out.Actor.Kind != "Device" || out.Actor.DeviceID == "" {
		return "", fmt.Errorf("actor_GetActor: acting as %q, not as a device", out.Actor.Kind)
	}
	t.deviceID = out.Actor.DeviceID
	return t.deviceID, nil
}

func (t *actionTransport) GetProperty(ctx context.Context, name string) (json.RawMessage, bool, error) {
	id, err := t.DeviceID(ctx)
	if err != nil {
		return nil, false, err
	}
	var out struct {
		Result string          `json:"result"`
		Value  json.RawMessage `json:"value"`
	}
	if err := t.inv.invoke(ctx, "devices_GetProperty", map[string]string{"deviceId": id, "name": name}, &out); err != nil {
		return nil, false, err
	}
	switch out.Result {
	case "Found":
		return out.Value, true, nil
	case "NotFound":
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("devices_GetProperty %s: unexpected result %q", name, out.Result)
}

func (t *actionTransport) SetProperty(ctx context.Context, name string, value json.RawMessage) error {
	id, err := t.DeviceID(ctx)
	if err != nil {
		return err
	}
	var out struct {
		Result string `json:"result"`
	}
	in := map[string]any{"deviceId": id, "name": name, "value": value}
	if err := t.inv.invoke(ctx, "devices_SetProperty", in, &out); err != nil {
		return err
	}
	if out.Result != "Set" {
		return fmt.Errorf("devices_SetProperty %s: result %q", name, out.Result)
	}
	return nil
}

func (t *actionTransport) PublishEvent(ctx context.Context, ev hub.Event) error {
	id, err := t.DeviceID(ctx)
	if err != nil {
		return err
	}
	in := map[string]any{"deviceId": id, "events": []hub.Event{ev}}
	return t.inv.invoke(ctx, "devices_PublishEvents", in, nil)
}

func (t *actionTransport) VersionDetails(ctx context.Context, p hub.VersionPath) (*hub.VersionDetails, bool, error) {
	var ref struct {
		Result    string `json:"result"`
		VersionID string `json:"versionId"`
	}
	if err := t.inv.invoke(ctx, "repositories_ResolveVersionByPath", p, &ref); err != nil {
		return nil, false, err
	}
	if ref.Result == "NotFound" {
		return nil, false, nil
	}
	if ref.Result != "Found" || ref.VersionID == "" {
		return nil, false, fmt.Errorf("repositories_ResolveVersionByPath %s: unexpected result %q", p, ref.Result)
	}
	var d hub.VersionDetails
	if err := t.inv.invoke(ctx, "repositories_GetVersionDetails", map[string]string{"versionId": ref.VersionID}, &d); err != nil {
		return nil, false, err
	}
	return &d, true, nil
}

func (t *actionTransport) IssueDownloadURL(ctx context.Context, p hub.VersionPath, filename string) (string, error) {
	in := map[string]string{"repository": p.Repository, "package": p.Package, "tag": p.Tag, "filename": filename}
	var ref struct {
		Result  string `json:"result"`
		AssetID string `json:"assetId"`
	}
	if err := t.inv.invoke(ctx, "repositories_ResolveVersionAssetByPath", in, &ref); err != nil {
		return "", err
	}
	if ref.Result != "Found" || ref.AssetID == "" {
		return "", fmt.Errorf("package version asset %s/%s not found", p, filename)
	}
	var out struct {
		URL string `json:"url"`
	}
	if err := t.inv.invoke(ctx, "repositories_IssueAssetDownloadUrl", map[string]string{"assetId": ref.AssetID}, &out); err != nil {
		return "", err
	}
	if out.URL == "" {
		return "", fmt.Errorf("repositories_IssueAssetDownloadUrl %s/%s: empty url", p, filename)
	}
	return out.URL, nil
}
