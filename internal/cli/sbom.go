package cli

import (
	"fmt"
	"strconv"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/sbom"
)

func init() { register(sbomCommand) }

func sbomCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "sbom",
		Usage: "write the SPDX 2.3 SBOM of a root filesystem",
		Description: "Reads the package database of the rootfs (dpkg var/lib/dpkg/status, opkg\n" +
			"var/lib/opkg/status or usr/lib/opkg/status, apk lib/apk/db/installed) and writes an SPDX\n" +
			"2.3 JSON document naming the system and release, with a purl for every package. The output\n" +
			"is deterministic: its creation time is SOURCE_DATE_EPOCH (or --created), so rebuilding a\n" +
			"release gives the same bytes. build-release writes it as build/<system>/sbom.spdx.json;\n" +
			"this command is for other build systems (the Yocto class calls it).",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "rootfs", Required: true, Usage: "root filesystem directory"},
			&ucli.StringFlag{Name: "system", Required: true, Usage: "system name"},
			&ucli.StringFlag{Name: "version", Required: true, Usage: "release version"},
			&ucli.StringFlag{Name: "release-id", Usage: "release id (default: SYSTEM@VERSION)"},
			&ucli.StringFlag{Name: "created", EnvVars: []string{"SOURCE_DATE_EPOCH"}, Usage: "creation time in seconds since 1970 (default: now)"},
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the document here (default: stdout)"},
		},
		Action: func(c *ucli.Context) error {
			g := globals(c)
			created := time.Now().UTC().Truncate(time.Second)
			if s := c.String("created"); s != "" {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil || n < 0 {
					return usageError(c, "--created (SOURCE_DATE_EPOCH) %q: want seconds since 1970", s)
				}
				created = time.Unix(n, 0).UTC()
			}
			doc, warnings, err := sbom.Generate(c.String("rootfs"), sbom.Options{
				System: c.String("system"), Version: c.String("version"), ReleaseID: c.String("release-id"), Created: created,
			})
			if err != nil {
				return err
			}
			for _, w := range warnings {
				g.Log.Warn(w)
			}
			if out := c.String("output"); out != "" {
				if err := atomicfile.WriteFile(out, doc, 0o644); err != nil {
					return err
				}
				if !g.JSON {
					fmt.Fprintf(g.Stdout, "wrote %s\n", out)
					return nil
				}
				return printJSON(g.Stdout, map[string]any{"output": out, "warnings": warnings})
			}
			_, err = g.Stdout.Write(doc)
			return err
		},
	}
}
