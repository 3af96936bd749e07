package agent

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/hub"
)

func TestMergeLikeJQ(t *testing.T) {
	for _, tc := range []struct{ base, over, want string }{
		{`{"path":"a/b/c"}`, `{}`, `{"path":"a/b/c"}`},
		{`{"path":"a/b/c"}`, `{"path":"a/b/d"}`, `{"path":"a/b/d"}`},
		{`{"rugix":{"x":1,"y":2}}`, `{"rugix":{"y":3}}`, `{"rugix":{"x":1,"y":3}}`},
		{`{"rugix":{"x":1}}`, `{"rugix":5}`, `{"rugix":5}`},
		{`{"a":1}`, `{"a":null}`, `{"a":null}`},
	} {
		var b, o map[string]any
		json.Unmarshal([]byte(tc.base), &b)
		json.Unmarshal([]byte(tc.over), &o)
		got, _ := json.Marshal(Merge(b, o))
		if string(got) != tc.want {
			t.Errorf("Merge(%s, %s) = %s, want %s", tc.base, tc.over, got, tc.want)
		}
	}
}

func TestUseBundleHashOnlyFromImage(t *testing.T) {
	for _, tc := range []struct {
		defaults, override string
		want               bool
	}{
		{`{"rugix":{"useBundleHash":true}}`, `{"rugix":{"useBundleHash":false}}`, true},
		{`{}`, `{"rugix":{"useBundleHash":true}}`, false},
		{`{"rugix":{"useBundleHash":false}}`, `{"rugix":{"useBundleHash":true}}`, false},
	} {
		d, _ := parseObject([]byte(tc.defaults), "d")
		o, _ := parseObject([]byte(tc.override), "o")
		eff, _ := effectiveConfig(d, o)
		if eff.UseBundleHash() != tc.want {
			t.Errorf("%s + %s: useBundleHash %v, want %v", tc.defaults, tc.override, eff.UseBundleHash(), tc.want)
		}
	}
}

func TestParseOSRelease(t *testing.T) {
	m := ParseOSRelease([]byte("# c\nID=poky\nIMAGE_ID=\"core-image\"\nIMAGE_VERSION='1.2 3'\nPRETTY_NAME=\"a \\\"q\\\"\"\nbroken\n"))
	if m["IMAGE_ID"] != "core-image" || m["IMAGE_VERSION"] != "1.2 3" || m["ID"] != "poky" || m["PRETTY_NAME"] != `a "q"` {
		t.Errorf("%q", m)
	}
}

func TestEventID(t *testing.T) {
	id := NewEventID(time.Date(2025, 7, 21, 11, 33, 0, 0, time.UTC))
	if !regexp.MustCompile(`^d_ev_20250721-1133-[1-9A-HJ-NP-Za-km-z]{8}$`).MatchString(id) {
		t.Errorf("event id %q", id)
	}
	if NewEventID(time.Now()) == NewEventID(time.Now()) {
		t.Error("event ids repeat")
	}
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	s := Settings{}
	s.Backoff.Initial, s.Backoff.Max = "10m", "1h"
	if err := s.resolve("x"); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]time.Duration{1: 10 * time.Minute, 2: 20 * time.Minute, 3: 40 * time.Minute, 4: time.Hour, 30: time.Hour} {
		if got := s.backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
	s.Backoff.Initial = "soon"
	if err := s.resolve("agent.toml"); err == nil {
		t.Error("bad duration accepted")
	}
}

func TestParseStatusTolerant(t *testing.T) {
	s := parseStatus(json.RawMessage(`{"state":"installing","targetVersion":"v2","failureCount":"x","lastError":7}`))
	if s.State != "installing" || s.TargetVersion == nil || *s.TargetVersion != "v2" || s.FailureCount != 0 || s.LastError != nil {
		t.Errorf("%+v", s)
	}
	if s := parseStatus(json.RawMessage(`{"state":"instal`)); s.State != "" {
		t.Errorf("half-written status parsed: %+v", s)
	}
}

func TestPendingEventsBounded(t *testing.T) {
	big := json.RawMessage(`"` + strings.Repeat("x", MaxPendingEventBytes) + `"`)
	for _, tc := range []struct {
		name        string
		queue       int
		body        json.RawMessage
		wantPending int
		wantDropped int
	}{
		{"under the bound", 10, json.RawMessage(`"m"`), 10, 0},
		{"at the bound", MaxPendingEvents, json.RawMessage(`"m"`), MaxPendingEvents, 0},
		{"over the bound, oldest dropped", MaxPendingEvents + 44, json.RawMessage(`"m"`), MaxPendingEvents, 44},
		{"an event over the byte bound", 1, big, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st State
			for i := range tc.queue {
				st.queueEvent(hub.Event{EventID: fmt.Sprint(i), Body: tc.body})
			}
			if len(st.PendingEvents) != tc.wantPending || st.DroppedEvents != tc.wantDropped {
				t.Fatalf("%d pending, %d dropped; want %d, %d", len(st.PendingEvents), st.DroppedEvents, tc.wantPending, tc.wantDropped)
			}
			if tc.wantPending > 0 {
				if first, last := st.PendingEvents[0].EventID, st.PendingEvents[len(st.PendingEvents)-1].EventID; first != fmt.Sprint(tc.wantDropped) || last != fmt.Sprint(tc.queue-1) {
					t.Errorf("kept %s..%s, want the newest", first, last)
				}
			}
		})
	}
}

func TestStateWithoutPendingEventsLoads(t *testing.T) {
	// A state file of an agent before pending events: no migration, nothing pending.
	var st State
	if err := json.Unmarshal([]byte(`{"phase":"rebooting","targetVersion":"v2","failureCount":1}`), &st); err != nil {
		t.Fatal(err)
	}
	if st.Phase != "rebooting" || st.PendingEvents != nil || st.DroppedEvents != 0 {
		t.Errorf("%+v", st)
	}
}
