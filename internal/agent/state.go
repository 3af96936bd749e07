package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

// Update states of dev.nexigon.ota.status.
const (
	StateIdle       = "idle"
	StateInstalling = "installing"
	StateRebooting  = "rebooting"
	StateCommitting = "committing"
	StateCompleted  = "completed"
	StateFailed     = "failed"
	StateBlocked    = "blocked"
	StateRollback   = "rollback"
)

// Status is the dev.nexigon.ota.status property. targetVersion and lastError are written as
// explicit nulls when cleared, like the reference scripts. BlockedReason and NextAttemptAt are
// otabake additions; the Hub ignores fields it does not know.
type Status struct {
	Config         OTAConfig  `json:"config,omitempty"`
	CurrentVersion string     `json:"currentVersion,omitempty"`
	State          string     `json:"state,omitempty"`
	TargetVersion  *string    `json:"targetVersion"`
	FailureCount   int        `json:"failureCount"`
	LastError      *string    `json:"lastError"`
	BlockedReason  string     `json:"blockedReason,omitempty"`
	NextAttemptAt  *time.Time `json:"nextAttemptAt,omitempty"`
}

// parseStatus reads a status property tolerantly: whatever does not parse is left zero, so a
// hand-edited or half-written property cannot stop the agent.
func parseStatus(raw json.RawMessage) Status {
	var m map[string]json.RawMessage
	var s Status
	if json.Unmarshal(raw, &m) != nil {
		return s
	}
	_ = json.Unmarshal(m["currentVersion"], &s.CurrentVersion)
	_ = json.Unmarshal(m["state"], &s.State)
	var str string
	if json.Unmarshal(m["targetVersion"], &str) == nil && str != "" {
		s.TargetVersion = &str
	}
	var le string
	if json.Unmarshal(m["lastError"], &le) == nil && le != "" {
		s.LastError = &le
	}
	_ = json.Unmarshal(m["failureCount"], &s.FailureCount)
	if s.FailureCount < 0 {
		s.FailureCount = 0
	}
	return s
}

// State is the agent's own record in /var/lib/otabake-agent/state.json. It, not the Hub
// property, decides what the next run does: the intended transition is written here before
// it is acted on, so a run killed at any point is resumed without a second install and
// without losing the failure count.
type State struct {
	// Phase is the transition in progress: installing, rebooting or committing; empty at rest.
	Phase string `json:"phase,omitempty"`
	// TargetVersion and Path are what Phase is about.
	TargetVersion string `json:"targetVersion,omitempty"`
	Path          string `json:"path,omitempty"`
	// PhaseSince is when Phase was entered.
	PhaseSince time.Time `json:"phaseSince,omitzero"`
	// BootID is the kernel boot ID when Phase was entered.
	BootID string `json:"bootId,omitempty"`
	// FailureCount counts consecutive failures; LastError is the latest one.
	FailureCount int    `json:"failureCount"`
	LastError    string `json:"lastError,omitempty"`
	// FailedKey is path@target of the latest failure, NextAttempt when it may be retried.
	FailedKey   string    `json:"failedKey,omitempty"`
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	// ConfigDigest identifies the effective configuration; a change resets the failure count.
	ConfigDigest string `json:"configDigest,omitempty"`
	// Status is the last status published (or meant to be published).
	Status *Status `json:"status,omitempty"`
	// PendingEvents are events not yet delivered, oldest first, with the IDs they were made
	// with, so that the Hub can deduplicate a retry of a publish whose answer was lost. Every
	// cycle sends them first, in order. Added in the same JSON object as the rest: a state
	// file without it (older agents) simply has none pending, and an older agent reading a
	// newer file ignores it.
	PendingEvents []hub.Event `json:"pendingEvents,omitempty"`
	// DroppedEvents counts events given up: pushed out by the bounds below, or refused by the
	// Hub as invalid.
	DroppedEvents int `json:"droppedEvents,omitempty"`
}

// Bounds of the pending events in the state file.
const (
	MaxPendingEvents     = 256
	MaxPendingEventBytes = 512 << 10
)

// queueEvent appends ev to the pending events, dropping the oldest while a bound is exceeded
// (an event alone over the byte bound is dropped too). It returns how many were dropped.
func (st *State) queueEvent(ev hub.Event) int {
	st.PendingEvents = append(st.PendingEvents, ev)
	sizes := make([]int, len(st.PendingEvents))
	total := 0
	for i, e := range st.PendingEvents {
		sizes[i] = eventBytes(e)
		total += sizes[i]
	}
	dropped := 0
	for len(st.PendingEvents) > 0 && (len(st.PendingEvents) > MaxPendingEvents || total > MaxPendingEventBytes) {
		total -= sizes[dropped]
		st.PendingEvents = st.PendingEvents[1:]
		dropped++
	}
	st.DroppedEvents += dropped
	if len(st.PendingEvents) == 0 {
		st.PendingEvents = nil
	}
	return dropped
}

// eventBytes is ev's size in the state file; one that cannot be encoded is over the bound.
func eventBytes(ev hub.Event) int {
	data, err := json.Marshal(ev)
	if err != nil {
		return MaxPendingEventBytes + 1
	}
	return len(data)
}

func (a *Agent) loadState() (State, bool, error) {
	var st State
	data, err := os.ReadFile(a.path(StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read agent state: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		// Written atomically, so this is damage from outside; start over rather than brick.
		a.log().Warn("agent state unreadable, starting over", "file", StateFile, "error", err)
		return State{}, false, nil
	}
	return st, true, nil
}

func (a *Agent) saveState(st *State) error {
	p := a.path(StateFile)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("save agent state: %w", err)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save agent state: %w", err)
	}
	if err := atomicfile.WriteFile(p, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save agent state: %w", err)
	}
	return nil
}

// savePendingEvents writes st's pending events into the state file and nothing else of st: a
// cycle queues events between the points where it saves its transitions, and the file must
// keep saying what the last of those points said (a run killed now resumes from there).
func (a *Agent) savePendingEvents(st *State) error {
	disk, _, err := a.loadState()
	if err != nil {
		return err
	}
	disk.PendingEvents, disk.DroppedEvents = st.PendingEvents, st.DroppedEvents
	return a.saveState(&disk)
}

func (a *Agent) bootID() string {
	data, err := os.ReadFile(a.path(BootIDFile))
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(data))
}

// Lock is the single-instance lock.
type Lock struct{ f *os.File }

// ErrAlreadyRunning is returned when another agent run holds the lock.
var ErrAlreadyRunning = errors.New("another otabake-agent run is already running")

// lock takes the run lock without waiting.
func (a *Agent) lock() (*Lock, error) {
	p := a.path(LockFile)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock %s held)", ErrAlreadyRunning, p)
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return &Lock{f: f}, nil
}

// lockWait takes the run lock, waiting up to d; it reports whether it got it.
func (a *Agent) lockWait(d time.Duration) *Lock {
	deadline := time.Now().Add(d)
	for {
		l, err := a.lock()
		if err == nil {
			return l
		}
		if !errors.Is(err, ErrAlreadyRunning) || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Unlock releases the lock.
func (l *Lock) Unlock() {
	if l != nil {
		l.f.Close()
	}
}

// NewEventID returns a fresh device event ID for time t: d_ev_ + YYYYMMDD-HHMM- (UTC) + 8
// base-58 digits, a DeviceEventId of nexigon-ids (see internal/nexid).
func NewEventID(t time.Time) string {
	return nexid.DeviceEventID.NewAt(t)
}

func newEvent(now time.Time, sev hub.Severity, msg string, attrs map[string]string) hub.Event {
	body, _ := json.Marshal(msg)
	ev := hub.Event{
		EventID:    NewEventID(now),
		Category:   "ota",
		Severity:   sev,
		Body:       body,
		Attributes: map[string]json.RawMessage{},
		EmittedAt:  now.UTC(),
	}
	for k, v := range attrs {
		ev.Attributes[k], _ = json.Marshal(v)
	}
	return ev
}
