//go:build crashtest

package agent

import (
	"os"
	"syscall"
)

// crashpoint kills the agent at the named point when CrashEnv names it (test builds only).
func crashpoint(name string) {
	if os.Getenv(CrashEnv) == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
