package cli

import (
	"fmt"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/otabake/otabake/internal/agentbuild"
	"github.com/otabake/otabake/internal/release"
)

func init() { register(agentCommand) }

func agentCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "agent",
		Usage: "otabake-agent release artifacts",
		Subcommands: []*ucli.Command{{
			Name:      "build",
			Usage:     "cross-compile static otabake-agent binaries and their SHA256SUMS, reproducibly",
			ArgsUsage: " ",
			Description: "Builds otabake-agent-<arch> for each Rugix architecture (amd64, arm64, armv7, and armhf,\n" +
				"which is ARMv6 hard-float for the Raspberry Pi Zero and 1) into --output, with a SHA256SUMS\n" +
				"file: the artifacts of an otabake release that the otabake-agent Bakery recipe downloads and\n" +
				"checks. The build is static and position-dependent (CGO_ENABLED=0, -buildmode=exe), built\n" +
				"from go.agent.mod with -trimpath and no VCS stamp, so the same sources and --version give\n" +
				"the same bytes on every machine. A file whose bytes did not change is not rewritten.\n\n" +
				"Needs an otabake checkout (--source, OTABAKE_SOURCE_DIR, or the module `go list -m` finds\n" +
				"from the project directory) and the go command.",
			Flags: []ucli.Flag{
				&ucli.StringSliceFlag{Name: "arch", Usage: "architecture to build, repeatable (default: " + strings.Join(agentbuild.Names(), ", ") + ")"},
				&ucli.StringFlag{Name: "version", Usage: "version linked into the binaries (default: this otabake's version)"},
				&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "dist", Usage: "output directory"},
				&ucli.StringFlag{Name: "source", EnvVars: []string{"OTABAKE_SOURCE_DIR"}, Usage: "otabake checkout to build from"},
			},
			Action: func(c *ucli.Context) error {
				if c.NArg() != 0 {
					return fmt.Errorf("agent build takes no arguments, got %q (see 'otabake agent build --help')", c.Args().First())
				}
				g := globals(c)
				arches := c.StringSlice("arch")
				if len(arches) == 0 {
					arches = agentbuild.Names()
				}
				version := c.String("version")
				if version == "" {
					version = Version
				}
				src := c.String("source")
				if src == "" {
					var err error
					if src, err = release.SourceDir(c.Context, g.ProjectDir); err != nil {
						return err
					}
				}
				results, err := agentbuild.BuildAll(c.Context, agentbuild.Options{Source: src, Version: version}, arches, c.String("output"))
				if err != nil {
					return err
				}
				if g.JSON {
					return printJSON(g.Stdout, map[string]any{"version": version, "artifacts": results})
				}
				for _, r := range results {
					state := "unchanged"
					if r.Written {
						state = "written"
					}
					fmt.Fprintf(g.Stdout, "%-9s %s  %s (%d bytes)\n", state, r.SHA256, r.Path, r.Size)
				}
				return nil
			},
		}},
	}
}
