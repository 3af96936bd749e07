// Command otabake-agent is the device-side OTA reconcile loop; see internal/agent.
package main

import (
	"os"

	"github.com/otabake/otabake/internal/agent/cli"
)

func main() {
	os.Exit(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
