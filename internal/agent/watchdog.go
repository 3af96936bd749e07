package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/otabake/otabake/internal/hub"
)

// WatchdogResult says what the watchdog did.
type WatchdogResult struct {
	ActiveGroup  string `json:"activeGroup"`
	DefaultGroup string `json:"defaultGroup"`
	// RolledBack is true when the boot was uncommitted and a rollback reboot was started.
	RolledBack bool   `json:"rolledBack"`
	Message    string `json:"message"`
}

// Watchdog runs some time after boot: a boot still uncommitted by then did not prove itself,
// so it reboots into the default group (a rollback). It works without a Hub transport
// (Transport may be nil): an unreachable Hub must not keep a broken update alive.
func (a *Agent) Watchdog(ctx context.Context) (*WatchdogResult, error) {
	// Wait briefly for a running check (it may be committing right now), but never forever.
	l := a.lockWait(30 * time.Second)
	defer l.Unlock()
	boot, err := a.Engine.BootState(ctx)
	if err != nil {
		return nil, err
	}
	res := &WatchdogResult{ActiveGroup: boot.ActiveGroup, DefaultGroup: boot.DefaultGroup}
	if !boot.NeedsCommit {
		res.Message = "nothing to do: the running boot group is committed"
		return res, nil
	}
	res.Message = "watchdog triggering rollback reboot"
	a.log().Warn(res.Message, "activeGroup", boot.ActiveGroup, "defaultGroup", boot.DefaultGroup)
	if a.Transport != nil {
		ev := newEvent(a.now(), hub.SeverityWarning, res.Message, map[string]string{
			"activeGroup": boot.ActiveGroup, "defaultGroup": boot.DefaultGroup,
		})
		if err := a.Transport.PublishEvent(ctx, ev); err != nil {
			a.log().Warn("cannot publish watchdog event", "error", err)
		}
		if st, ok, _ := a.loadState(); ok && st.Status != nil {
			s := *st.Status
			s.State = StateRollback
			st.Status = &s
			if err := a.saveState(&st); err != nil {
				return nil, err
			}
			if data, err := jsonMarshal(s); err == nil {
				if err := a.Transport.SetProperty(ctx, StatusProperty, data); err != nil {
					a.log().Warn("cannot publish status", "error", err)
				}
			}
		}
	}
	if err := a.Engine.RebootDefault(ctx); err != nil {
		return res, fmt.Errorf("rollback reboot: %w", err)
	}
	res.RolledBack = true
	return res, nil
}
