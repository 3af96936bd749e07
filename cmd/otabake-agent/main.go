// Command otabake-agent is the device-side OTA reconcile loop; see internal/agent.
package main

import (
	"os"

	"github.com/otabake/otabake/internal/agent/agentcli"
)

func main() {
	os.Exit(agentcli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
