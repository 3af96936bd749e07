package agent_test

import (
	"testing"

	"github.com/otabake/otabake/internal/agent"
)

// TestCrashSafety SIGKILLs the agent at every transition of the install path; the next run
// must converge without a second install and without losing the failure count.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	for _, point := range []string{"install-intent", "installing", "installed", "reboot-intent", "rebooting", "rebooted"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, "rugix")
			r.writeFile(agent.SettingsFile, "engine = \"rugix\"\ntransport = \"hub\"\n[hub]\nurl = \""+r.url+
				"\"\ntoken-file = \"/etc/otabake/hub-token\"\ndevice-id = \""+testDevice+"\"\n[backoff]\ninitial = \"1ms\"\n")
			// A first failure (no bundle attached yet) so there is a count to keep.
			vid := r.publish("v2", "stable", "", nil)
			r.check()
			r.wantStatus("failed", "v1", 1, "not found")
			path, _ := r.newBundle("v2")
			r.attach(vid, path, nil)

			if res := r.run([]string{agent.CrashEnv + "=" + point}, "check"); !res.killed {
				t.Fatalf("agent was not killed at %s (exit %d)", point, res.code)
			}
			if res := r.check(); res.code != 0 {
				t.Fatalf("run after the crash: exit %d", res.code)
			}
			r.wantStatus("rebooting", "v1", 1, "not found")
			d := r.device()
			if d.Installs != 1 {
				t.Fatalf("installs = %d after crash at %s, want 1", d.Installs, point)
			}
			if !d.RebootPending || d.TryNext != "b" {
				t.Fatalf("no spare reboot requested after crash at %s: %+v", point, d)
			}
			r.boot()
			if res := r.check(); res.code != 0 {
				t.Fatalf("after reboot: exit %d", res.code)
			}
			r.wantStatus("completed", "v2", 0, "")
			if d := r.device(); d.Installs != 1 || d.Commits != 1 {
				t.Errorf("installs %d commits %d, want 1 1", d.Installs, d.Commits)
			}
		})
	}
}

// TestInstallInterruptedByReboot: power lost during an install. The next boot retries the
// install at once (the target is not to blame) and counts no failure.
func TestInstallInterruptedByReboot(t *testing.T) {
	t.Parallel()
	r := newRig(t, "rugix")
	path, _ := r.newBundle("v2")
	r.publish("v2", "stable", path, nil)
	if res := r.run([]string{agent.CrashEnv + "=installing"}, "check"); !res.killed {
		t.Fatalf("agent was not killed (exit %d)", res.code)
	}
	r.boot()
	if res := r.check(); res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	r.wantStatus("rebooting", "v1", 0, "")
	if d := r.device(); d.Installs != 1 || d.Boots != 1 {
		t.Errorf("installs %d boots %d, want 1 1", d.Installs, d.Boots)
	}
}
