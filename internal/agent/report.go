package agent

import (
	"context"
	"encoding/json"
	"time"
)

// Report is `otabake-agent status`: what runs, what the agent is configured to do, where each
// part of that configuration came from, and the last status it published.
type Report struct {
	System         string            `json:"system"`
	CurrentVersion string            `json:"currentVersion"`
	Engine         string            `json:"engine"`
	Transport      string            `json:"transport"`
	DeviceID       string            `json:"deviceId,omitempty"`
	Config         OTAConfig         `json:"config"`
	ConfigSources  map[string]string `json:"configSources"`
	// HubError says why the device configuration could not be read (the report then shows
	// the image defaults only).
	HubError     string     `json:"hubError,omitempty"`
	LastStatus   *Status    `json:"lastStatus,omitempty"`
	Phase        string     `json:"phase,omitempty"`
	FailureCount int        `json:"failureCount"`
	NextAttempt  *time.Time `json:"nextAttempt,omitempty"`
	// PendingEvents counts events kept for the next cycle; DroppedEvents those given up.
	PendingEvents int `json:"pendingEvents,omitempty"`
	DroppedEvents int `json:"droppedEvents,omitempty"`
}

// Report gathers the status report. It reads only; the Hub is optional.
func (a *Agent) Report(ctx context.Context) (*Report, error) {
	r := &Report{}
	var err error
	if r.System, r.CurrentVersion, err = a.identity(); err != nil {
		return nil, err
	}
	if a.Engine != nil {
		r.Engine = a.Engine.Name()
	}
	defaults, err := loadDefaults(a.path(DefaultsFile))
	if err != nil {
		return nil, err
	}
	override := OTAConfig{}
	if a.Transport != nil {
		r.Transport = a.Transport.Name()
		if id, err := a.Transport.DeviceID(ctx); err == nil {
			r.DeviceID = id
		}
		raw, found, err := a.Transport.GetProperty(ctx, ConfigProperty)
		switch {
		case err != nil:
			r.HubError = err.Error()
		case found:
			if o, err := parseObject(raw, ConfigProperty); err == nil {
				override = o
			} else {
				r.HubError = err.Error()
			}
		}
	} else {
		r.HubError = "no Hub transport available"
	}
	r.Config, r.ConfigSources = effectiveConfig(defaults, override)
	st, ok, err := a.loadState()
	if err != nil {
		return nil, err
	}
	if ok {
		r.LastStatus, r.Phase, r.FailureCount = st.Status, st.Phase, st.FailureCount
		r.PendingEvents, r.DroppedEvents = len(st.PendingEvents), st.DroppedEvents
		if !st.NextAttempt.IsZero() {
			t := st.NextAttempt
			r.NextAttempt = &t
		}
	}
	return r, nil
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
