package device

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/otabake/otabake/internal/hub"
)

// HubTransport talks to a Hub directly through a hub.Hub (for the agent, the HTTP client).
type HubTransport struct {
	h        hub.Hub
	mu       sync.Mutex
	deviceID string
}

// NewHub wraps h. deviceID may be empty when the Hub's actor is the device itself.
func NewHub(h hub.Hub, deviceID string) *HubTransport {
	return &HubTransport{h: h, deviceID: deviceID}
}

// Name implements Transport.
func (t *HubTransport) Name() string { return NameHub }

// DeviceID implements Transport.
func (t *HubTransport) DeviceID(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deviceID != "" {
		return t.deviceID, nil
	}
	a, err := t.h.GetActor(ctx)
	if err != nil {
		return "", fmt.Errorf("get actor: %w", err)
	}
	if a.Kind != "Device" || a.DeviceID == "" {
		return "", fmt.Errorf("the hub token acts as %s, not as a device: configure the device id ([hub] device-id)", a.Kind)
	}
	t.deviceID = a.DeviceID
	return t.deviceID, nil
}

// GetProperty implements Transport.
func (t *HubTransport) GetProperty(ctx context.Context, name string) (json.RawMessage, bool, error) {
	id, err := t.DeviceID(ctx)
	if err != nil {
		return nil, false, err
	}
	p, found, err := t.h.GetProperty(ctx, id, name)
	if err != nil || !found {
		return nil, found, err
	}
	return p.Value, true, nil
}

// SetProperty implements Transport.
func (t *HubTransport) SetProperty(ctx context.Context, name string, value json.RawMessage) error {
	id, err := t.DeviceID(ctx)
	if err != nil {
		return err
	}
	return t.h.SetProperty(ctx, id, name, value)
}

// PublishEvent implements Transport.
func (t *HubTransport) PublishEvent(ctx context.Context, ev hub.Event) error {
	id, err := t.DeviceID(ctx)
	if err != nil {
		return err
	}
	return t.h.PublishEvents(ctx, id, []hub.Event{ev})
}

// VersionDetails implements Transport.
func (t *HubTransport) VersionDetails(ctx context.Context, path hub.VersionPath) (*hub.VersionDetails, bool, error) {
	ref, found, err := t.h.ResolveVersion(ctx, path)
	if err != nil || !found {
		return nil, found, err
	}
	d, err := t.h.GetVersionDetails(ctx, ref.VersionID)
	if err != nil {
		return nil, false, err
	}
	return d, true, nil
}

// IssueDownloadURL implements Transport.
func (t *HubTransport) IssueDownloadURL(ctx context.Context, path hub.VersionPath, filename string) (string, error) {
	ref, found, err := t.h.ResolveVersionAsset(ctx, path, filename)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("package version asset %s/%s not found", path, filename)
	}
	return t.h.IssueAssetDownloadURL(ctx, ref.AssetID, "")
}

// Close implements Transport.
func (t *HubTransport) Close() error { return nil }
