//go:build !crashtest

package agent

import "testing"

// TestCrashHookNotInProduct: without -tags crashtest (how the agent is built for devices), the
// crash hook ignores CrashEnv; with the hook compiled in, this would kill the test binary.
func TestCrashHookNotInProduct(t *testing.T) {
	t.Setenv(CrashEnv, "installing")
	crashpoint("installing")
}
