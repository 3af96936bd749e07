package agent

// CrashEnv names the environment variable with which the tests SIGKILL the agent at a named
// point of the install path ("install-intent", "installing", "installed", "reboot-intent",
// "rebooting", "rebooted"), to prove that every transition is crash safe. Only a test build
// (-tags crashtest, crash_hook.go) reads it: the shipped agent never looks at it.
const CrashEnv = "OTABAKE_AGENT_TEST_CRASH_AT"
