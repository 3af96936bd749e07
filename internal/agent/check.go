package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/agent/device"
	"github.com/otabake/otabake/internal/agent/engine"
	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/logging"
	"github.com/otabake/otabake/internal/tool"
)

// Agent runs the device side of the Nexigon system update protocol.
type Agent struct {
	// Root prefixes every device path; empty on a real device.
	Root string
	// Settings are agent.toml's.
	Settings Settings
	// Engine is the update tool.
	Engine engine.Engine
	// Transport reaches the Hub as this device.
	Transport device.Transport
	// HubURL is the URL of the Hub the transport talks to, "" when it is not known. Bundle
	// URLs from the Hub must be https://; plain http:// is accepted only when HubURL is an
	// http:// URL itself (a lab or local Hub), since such a Hub cannot hand out anything
	// better. See HubURLFor.
	HubURL string
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

func (a *Agent) log() *slog.Logger {
	if a.Log == nil {
		return logging.Discard()
	}
	return a.Log
}

// sourcePolicy is the bundle URL rule for this agent's Hub: http only when the Hub is http.
func (a *Agent) sourcePolicy() engine.SourcePolicy {
	u := strings.ToLower(a.HubURL)
	return engine.SourcePolicy{AllowHTTP: strings.HasPrefix(u, "http://")}
}

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// CheckOptions tune one reconcile cycle.
type CheckOptions struct {
	// DryRun reads everything and reports what would be done, changing nothing: no status,
	// no events, no state, no install, no commit, no reboot.
	DryRun bool
	// IgnoreBackoff retries a failed target now instead of waiting for its backoff.
	IgnoreBackoff bool
}

// CheckResult is what a cycle did (or, dry, would do).
type CheckResult struct {
	System         string    `json:"system"`
	CurrentVersion string    `json:"currentVersion"`
	Config         OTAConfig `json:"config"`
	Status         Status    `json:"status"`
	// Actions are the steps taken or, with DryRun, planned.
	Actions []string `json:"actions"`
}

// ErrCheckFailed marks a cycle that ended in state failed (already published).
var ErrCheckFailed = errors.New("update check failed")

// cycle is one Check run's working set.
type cycle struct {
	a       *Agent
	opts    CheckOptions
	ctx     context.Context
	st      State
	status  Status
	res     *CheckResult
	system  string
	current string
	config  OTAConfig
	useHash bool
	bootID  string
	boot    engine.BootState
}

// Check runs one reconcile cycle (spec §4's reference algorithm, plus backoff, defer
// conditions and crash recovery).
func (a *Agent) Check(ctx context.Context, opts CheckOptions) (*CheckResult, error) {
	l, err := a.lock()
	if err != nil {
		return nil, err
	}
	defer l.Unlock()

	c := &cycle{a: a, opts: opts, ctx: ctx, res: &CheckResult{}}
	if c.system, c.current, err = a.identity(); err != nil {
		return nil, err
	}
	c.res.System, c.res.CurrentVersion = c.system, c.current
	a.log().Info("system identified", "system", c.system, "version", c.current, "engine", a.Engine.Name(), "transport", a.Transport.Name())

	defaults, err := loadDefaults(a.path(DefaultsFile))
	if err != nil {
		return nil, err
	}
	// Bundle hashes are a Rugix mechanism; RAUC verifies signatures.
	c.useHash = defaults.UseBundleHash() && a.Engine.Name() == "rugix"
	rawOverride, found, err := a.Transport.GetProperty(ctx, ConfigProperty)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ConfigProperty, err)
	}
	override := OTAConfig{}
	if found {
		if override, err = parseObject(rawOverride, ConfigProperty); err != nil {
			a.log().Warn("ignoring malformed device configuration", "property", ConfigProperty, "error", err)
			override = OTAConfig{}
		}
	}
	c.config, _ = effectiveConfig(defaults, override)
	c.res.Config = c.config

	rawStatus, found, err := a.Transport.GetProperty(ctx, StatusProperty)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", StatusProperty, err)
	}
	var prev Status
	if found {
		prev = parseStatus(rawStatus)
	}
	st, have, err := a.loadState()
	if err != nil {
		return nil, err
	}
	if !have {
		// First run (or upgrade from the shell scripts): adopt what the property says.
		st.FailureCount = prev.FailureCount
		if prev.LastError != nil {
			st.LastError = *prev.LastError
		}
		switch prev.State {
		case StateInstalling, StateRebooting, StateCommitting:
			st.Phase = prev.State
			if prev.TargetVersion != nil {
				st.TargetVersion = *prev.TargetVersion
			}
		}
	}
	c.st = st
	if d := c.config.digest(); c.st.ConfigDigest != d {
		if c.st.ConfigDigest != "" {
			a.log().Info("configuration changed, failure count reset")
			c.st.FailureCount, c.st.LastError, c.st.FailedKey, c.st.NextAttempt = 0, "", "", time.Time{}
		}
		c.st.ConfigDigest = d
	}
	c.status = prev
	if c.st.Status != nil {
		c.status = *c.st.Status
	}
	c.status.Config = c.config
	c.status.CurrentVersion = c.current
	if c.status.State == "" {
		c.status.State = StateIdle
	}
	c.status.FailureCount = c.st.FailureCount
	c.status.LastError = strPtr(c.st.LastError)
	if err := c.publish(); err != nil {
		return c.res, err
	}
	// Events an earlier cycle could not deliver go before any of this one's.
	c.flushEvents(false)

	if c.boot, err = a.Engine.BootState(ctx); err != nil {
		return c.res, c.fail(err.Error(), nil)
	}
	c.bootID = a.bootID()
	done, err := c.reconcileBoot()
	if done || err != nil {
		return c.result(), err
	}
	err = c.update()
	return c.result(), err
}

func (c *cycle) result() *CheckResult {
	c.res.Status = c.status
	return c.res
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// reconcileBoot handles the boot after (or in the middle of) an update: commit, rollback
// detection and resuming a run that was killed. done means the cycle ends here.
func (c *cycle) reconcileBoot() (done bool, err error) {
	st := &c.st
	if c.boot.NeedsCommit {
		c.st.Phase = StateCommitting
		attrs := map[string]string{"activeGroup": c.boot.ActiveGroup, "defaultGroup": c.boot.DefaultGroup}
		if err := c.transition(StateCommitting, hub.SeverityInfo, "committing system", attrs); err != nil {
			return true, err
		}
		c.plan("%s: commit boot group %s", c.a.Engine.Name(), c.boot.ActiveGroup)
		if !c.opts.DryRun {
			if err := c.a.Engine.Commit(c.ctx); err != nil {
				// The boot stays on trial: the state stays committing, the watchdog or the
				// next reboot rolls back.
				msg := err.Error()
				c.st.FailureCount++
				c.st.LastError = msg
				c.status.FailureCount = c.st.FailureCount
				c.status.LastError = &msg
				attrs["error"] = msg
				if err := c.transition(StateCommitting, hub.SeverityError, "commit failed", attrs); err != nil {
					return true, err
				}
				return true, fmt.Errorf("%w: %s", ErrCheckFailed, msg)
			}
		}
		return false, c.complete("update completed")
	}
	if st.Phase == "" {
		return false, nil
	}
	sameBoot := st.BootID != "" && st.BootID == c.bootID
	switch {
	case sameBoot && st.Phase == StateInstalling:
		if !c.boot.SpareUpdatedAt.IsZero() && !st.PhaseSince.IsZero() && !c.boot.SpareUpdatedAt.Before(st.PhaseSince.Truncate(time.Second)) {
			c.a.log().Info("the interrupted install had finished; continuing with the reboot", "target", st.TargetVersion)
			return true, c.reboot()
		}
		c.a.log().Info("resuming an interrupted install", "target", st.TargetVersion)
		return false, nil
	case st.Phase == StateInstalling:
		// Rebooted (power loss, operator) in the middle of an install: the spare group is
		// incomplete and was never booted. Retry; the target is not to blame.
		c.a.log().Info("an install was interrupted by a reboot; retrying", "target", st.TargetVersion)
		return false, nil
	case sameBoot && st.Phase == StateRebooting:
		c.a.log().Info("the reboot into the update did not happen; rebooting again", "target", st.TargetVersion)
		return true, c.reboot()
	}
	if st.TargetVersion != "" && st.TargetVersion != c.current {
		msg := fmt.Sprintf("update rolled back (expected %s, running %s)", st.TargetVersion, c.current)
		st.Phase = ""
		err := c.fail(msg, map[string]string{"targetVersion": st.TargetVersion, "currentVersion": c.current})
		if errors.Is(err, ErrCheckFailed) {
			// Reporting a rollback is this run doing its job; the failure is in the status.
			err = nil
		}
		return true, err
	}
	return false, c.complete("update completed")
}

// update resolves the target and installs it when it differs from the running version.
func (c *cycle) update() error {
	// Any interrupted install is either redone below or superseded. Redoing it is the attempt
	// the backoff already allowed, so it is not blocked again.
	resume := ""
	if c.st.Phase == StateInstalling {
		resume = c.st.TargetVersion
	}
	c.st.Phase = ""
	pathStr := c.config.Path()
	if pathStr == "" {
		return c.fail(fmt.Sprintf("no update path configured (set path in %s or the %s property)", DefaultsFile, ConfigProperty), nil)
	}
	path, err := hub.ParseVersionPath(pathStr)
	if err != nil {
		return c.fail(fmt.Sprintf("unable to resolve version at %s: %v", pathStr, err), map[string]string{"path": pathStr})
	}
	c.event(hub.SeverityInfo, "checking for updates", map[string]string{"path": pathStr, "system": c.system, "currentVersion": c.current})
	c.plan("resolve %s", pathStr)
	details, found, err := c.a.Transport.VersionDetails(c.ctx, path)
	if err != nil {
		return c.fail(fmt.Sprintf("unable to resolve version at %s: %v", pathStr, err), map[string]string{"path": pathStr})
	}
	if !found {
		return c.fail(fmt.Sprintf("unable to resolve version at %s", pathStr), map[string]string{"path": pathStr})
	}
	target := hub.ParseVersionMetadata(details.Metadata).ImageVersion
	if target == "" {
		return c.fail(fmt.Sprintf("version at %s has no imageVersion metadata", pathStr), map[string]string{"path": pathStr})
	}
	if target == c.current {
		c.plan("nothing to do: %s is running", target)
		c.st.Phase, c.st.TargetVersion = "", ""
		c.status.TargetVersion = nil
		c.event(hub.SeverityInfo, "no update available", map[string]string{"currentVersion": c.current})
		return c.complete("")
	}
	key := pathStr + "@" + target
	now := c.a.now()
	if c.st.FailedKey == key && now.Before(c.st.NextAttempt) && !c.opts.IgnoreBackoff && resume != target {
		reason := fmt.Sprintf("backing off after %d failed attempt(s) at %s; next attempt at %s", c.st.FailureCount, target, c.st.NextAttempt.UTC().Format(time.RFC3339))
		return c.block(reason, target, &c.st.NextAttempt)
	}
	if reason := c.deferReason(); reason != "" {
		return c.block(reason, target, nil)
	}
	filename := c.system + c.a.Engine.BundleSuffix()
	asset, ok := details.Asset(filename)
	if !ok {
		return c.fail(fmt.Sprintf("bundle asset %s not found in version %s", filename, pathStr), map[string]string{"targetVersion": target})
	}
	am := hub.ParseBundleAssetMetadata(asset.Metadata)
	if v := am.Version; v != "" && v != target {
		return c.fail(fmt.Sprintf("bundle asset %s is version %s but the version's imageVersion is %s; refusing to install", filename, v, target), map[string]string{"targetVersion": target})
	}
	var opts engine.InstallOptions
	if c.useHash {
		h := am.BundleHash()
		if h == "" {
			return c.fail(fmt.Sprintf("rugix.useBundleHash is set but bundle asset %s has no rugix.bundleHash metadata", filename), map[string]string{"targetVersion": target})
		}
		opts.BundleHash = strings.TrimSpace(h)
		if err := engine.CheckBundleHash(opts.BundleHash); err != nil {
			return c.fail(fmt.Sprintf("refusing to install %s: its rugix.bundleHash metadata is malformed: %v", filename, err), map[string]string{"targetVersion": target})
		}
	}
	c.event(hub.SeverityInfo, "update available, installing", map[string]string{"currentVersion": c.current, "targetVersion": target})
	url, err := c.a.Transport.IssueDownloadURL(c.ctx, path, filename)
	if err != nil {
		return c.fail(fmt.Sprintf("unable to issue a download URL for %s/%s: %v", pathStr, filename, err), map[string]string{"targetVersion": target})
	}
	if err := engine.CheckBundleURL(url, c.a.sourcePolicy()); err != nil {
		return c.fail(fmt.Sprintf("refusing to install %s: %v", filename, err), map[string]string{"targetVersion": target})
	}
	if c.opts.DryRun {
		argv, err := c.a.Engine.DescribeInstall(c.ctx, "<download URL>", opts)
		if err != nil {
			return err
		}
		c.plan("install %s %s: %s", filename, target, strings.Join(argv, " "))
		c.plan("reboot into boot group %s", c.boot.SpareGroup)
		return nil
	}

	// Persist the intent before acting: a run killed from here on resumes from the state file.
	c.st.Phase, c.st.TargetVersion, c.st.Path = StateInstalling, target, pathStr
	c.st.PhaseSince, c.st.BootID = c.a.now(), c.bootID
	c.status.TargetVersion = &target
	c.status.BlockedReason, c.status.NextAttemptAt = "", nil
	if err := c.a.saveState(&c.st); err != nil {
		return err
	}
	crashpoint("install-intent")
	if err := c.transition(StateInstalling, hub.SeverityInfo, "installing update", map[string]string{
		"activeGroup": c.boot.ActiveGroup, "targetGroup": c.boot.SpareGroup, "targetVersion": target,
	}); err != nil {
		return err
	}
	crashpoint("installing")
	if err := c.a.Engine.Install(c.ctx, url, opts); err != nil {
		c.st.Phase = ""
		return c.fail(err.Error(), map[string]string{"targetVersion": target})
	}
	crashpoint("installed")
	return c.reboot()
}

// reboot enters rebooting and reboots into the spare group.
func (c *cycle) reboot() error {
	if c.opts.DryRun {
		c.plan("reboot into boot group %s", c.boot.SpareGroup)
		return nil
	}
	c.st.Phase = StateRebooting
	c.st.PhaseSince, c.st.BootID = c.a.now(), c.bootID
	if c.st.TargetVersion != "" {
		t := c.st.TargetVersion
		c.status.TargetVersion = &t
	}
	if err := c.a.saveState(&c.st); err != nil {
		return err
	}
	crashpoint("reboot-intent")
	if err := c.transition(StateRebooting, hub.SeverityInfo, "update installed, rebooting", nil); err != nil {
		return err
	}
	crashpoint("rebooting")
	c.plan("reboot into boot group %s", c.boot.SpareGroup)
	if err := c.a.Engine.RebootSpare(c.ctx); err != nil {
		return c.fail(err.Error(), map[string]string{"targetVersion": c.st.TargetVersion})
	}
	crashpoint("rebooted")
	return nil
}

// complete ends in completed: success resets the failure count.
func (c *cycle) complete(msg string) error {
	c.st.Phase = ""
	c.st.FailureCount, c.st.LastError, c.st.FailedKey, c.st.NextAttempt = 0, "", "", time.Time{}
	c.status.FailureCount, c.status.LastError = 0, nil
	c.status.BlockedReason, c.status.NextAttemptAt = "", nil
	if c.status.State == StateCompleted && msg == "" {
		return c.publish() // nothing changed but currentVersion/config, no event
	}
	return c.transition(StateCompleted, hub.SeverityInfo, msg, nil)
}

// fail records a failure: count, last error, backoff, state failed and an error event. It
// returns ErrCheckFailed wrapped with the message (or the error that kept it from recording).
func (c *cycle) fail(msg string, attrs map[string]string) error {
	c.a.log().Error("update failed", "error", msg)
	if c.opts.DryRun {
		c.plan("fail: %s", msg)
		return fmt.Errorf("%w: %s", ErrCheckFailed, msg)
	}
	// Phase is left alone: a failure to read the boot state must not forget a reboot in
	// flight. Callers clear it where the failure ends the transition.
	c.st.FailureCount++
	c.st.LastError = msg
	target := ""
	if c.status.TargetVersion != nil {
		target = *c.status.TargetVersion
	}
	if t, ok := attrs["targetVersion"]; ok {
		target = t
	}
	c.st.FailedKey = c.config.Path() + "@" + target
	c.st.NextAttempt = c.a.now().Add(c.a.Settings.backoff(c.st.FailureCount))
	c.status.FailureCount = c.st.FailureCount
	c.status.LastError = &msg
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs["error"] = msg
	if err := c.transition(StateFailed, hub.SeverityError, "update failed", attrs); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s", ErrCheckFailed, msg)
}

// block ends in blocked: an update is available but deferred. The event is emitted only when
// the reason changes, so a long deferral does not flood the event log.
func (c *cycle) block(reason, target string, next *time.Time) error {
	c.plan("blocked: %s", reason)
	c.a.log().Info("update blocked", "reason", reason)
	changed := c.status.State != StateBlocked || c.status.BlockedReason != reason
	c.status.BlockedReason = reason
	if next != nil {
		t := next.UTC()
		c.status.NextAttemptAt = &t
	} else {
		c.status.NextAttemptAt = nil
	}
	c.status.TargetVersion = &target
	if !changed {
		return c.publish()
	}
	attrs := map[string]string{"reason": reason, "targetVersion": target}
	if next != nil {
		attrs["nextAttemptAt"] = next.UTC().Format(time.RFC3339)
	}
	return c.transition(StateBlocked, hub.SeverityInfo, "update blocked", attrs)
}

// deferReason checks the configured defer conditions.
func (c *cycle) deferReason() string {
	if f := c.config.DeferFile(); f != "" {
		if _, err := os.Stat(c.a.path(f)); err == nil {
			return "deferred: " + f + " exists"
		}
	}
	if who := c.config.DeferInhibitor(); who != "" {
		if held, err := inhibitorHeld(c.ctx, who); err != nil {
			c.a.log().Warn("cannot check systemd inhibitor locks", "error", err)
		} else if held {
			return "deferred: systemd inhibitor lock held by " + who
		}
	}
	return ""
}

// inhibitorHeld reports whether a systemd inhibitor lock with that "who" is held.
func inhibitorHeld(ctx context.Context, who string) (bool, error) {
	res, err := tool.Run(ctx, tool.Cmd{Path: "systemd-inhibit", Package: "systemd", Args: []string{"--list", "--no-pager", "--no-legend"}})
	if err != nil {
		return false, fmt.Errorf("list inhibitor locks: %w", err)
	}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == who {
			return true, nil
		}
	}
	return false, nil
}

// transition moves to state: persist locally, publish the property, emit an event.
func (c *cycle) transition(state string, sev hub.Severity, msg string, attrs map[string]string) error {
	c.status.State = state
	if err := c.publish(); err != nil {
		return err
	}
	if msg != "" {
		c.event(sev, msg, attrs)
	}
	return nil
}

// publish saves the status in the state file, then sets the property. A failed property write
// is logged, not fatal: the local state is authoritative and the next run republishes.
func (c *cycle) publish() error {
	if c.opts.DryRun {
		return nil
	}
	s := c.status
	c.st.Status = &s
	if err := c.a.saveState(&c.st); err != nil {
		return err
	}
	data, err := json.Marshal(c.status)
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	if err := c.a.Transport.SetProperty(c.ctx, StatusProperty, data); err != nil {
		c.a.log().Warn("cannot publish status", "property", StatusProperty, "error", err)
	}
	return nil
}

// event publishes an event, or keeps it in the state file for the next attempt when it
// cannot be published now. Events already pending go first, so the Hub sees them in order.
func (c *cycle) event(sev hub.Severity, msg string, attrs map[string]string) {
	if c.opts.DryRun {
		return
	}
	if dropped := c.st.queueEvent(newEvent(c.a.now(), sev, msg, attrs)); dropped > 0 {
		c.a.log().Warn("pending events over their bound, oldest dropped", "dropped", dropped, "droppedTotal", c.st.DroppedEvents)
	}
	c.flushEvents(true)
}

// flushEvents publishes the pending events in order, stopping at the first that fails for a
// reason a later attempt may not have. An event the Hub refuses as invalid is dropped (and
// counted): it would be refused forever and hold up every later one. The state is saved when
// the pending events changed (queued says the last one was just added and is not saved yet).
func (c *cycle) flushEvents(queued bool) {
	if c.opts.DryRun || len(c.st.PendingEvents) == 0 {
		return
	}
	before := len(c.st.PendingEvents)
	for len(c.st.PendingEvents) > 0 {
		ev := c.st.PendingEvents[0]
		err := c.a.Transport.PublishEvent(c.ctx, ev)
		if err != nil && !hub.IsKind(err, hub.KindInvalid) {
			c.a.log().Warn("cannot publish event, kept for the next attempt", "eventId", ev.EventID, "pending", len(c.st.PendingEvents), "error", err)
			break
		}
		if err != nil {
			c.st.DroppedEvents++
			c.a.log().Error("the Hub refuses an event, dropped", "eventId", ev.EventID, "error", err)
		}
		c.st.PendingEvents = c.st.PendingEvents[1:]
	}
	if len(c.st.PendingEvents) == 0 {
		c.st.PendingEvents = nil
	}
	if !queued && len(c.st.PendingEvents) == before {
		return
	}
	if queued && before == 1 && len(c.st.PendingEvents) == 0 {
		return // delivered at once: nothing to remember
	}
	if err := c.a.savePendingEvents(&c.st); err != nil {
		c.a.log().Warn("cannot save pending events", "pending", len(c.st.PendingEvents), "error", err)
	}
}

func (c *cycle) plan(format string, args ...any) {
	c.res.Actions = append(c.res.Actions, fmt.Sprintf(format, args...))
}
