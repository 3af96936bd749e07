package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/otabake/otabake/internal/bake"
	"github.com/otabake/otabake/internal/sign"
)

func init() { register(bakeCommand) }

func bakeCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "bake",
		Usage: "write the release identity and OTA defaults into a root filesystem",
		Description: "Writes /etc/rugix/system-build-info.json exactly as Rugix Bakery does, sets IMAGE_ID and\n" +
			"IMAGE_VERSION in os-release, and optionally writes /etc/otabake/ota.json (--ota-path) and\n" +
			"/etc/rugix/system.toml with Rugix Ctrl's defaults for a target (--target), and the trust roots\n" +
			"Rugix Ctrl verifies update bundles against (--trust-root: /etc/rugix/root.crt, root-2.crt, …,\n" +
			"/etc/rugix/roots.pem and /etc/rugix/ctrl.toml [signatures] roots). It works on a\n" +
			"staging directory as an ordinary user (Yocto's ${IMAGE_ROOTFS}), resolves symlinks as if the\n" +
			"rootfs were /, refuses paths that leave it, and a second run changes nothing.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "rootfs", Required: true, Usage: "root filesystem directory to bake into"},
			&ucli.StringFlag{Name: "system", Required: true, Usage: "system name (\"name\" in system-build-info.json, IMAGE_ID)"},
			&ucli.StringFlag{Name: "version", Required: true, Usage: "release version (IMAGE_VERSION)"},
			&ucli.StringFlag{Name: "release-id", Usage: "release id (default: SYSTEM@VERSION, like Rugix Bakery)"},
			&ucli.StringFlag{Name: "ota-path", Usage: "agent update path REPOSITORY/PACKAGE/TAG written to /etc/otabake/ota.json"},
			&ucli.BoolFlag{Name: "use-bundle-hash", Usage: "make the agent verify bundles by their hash (needs --ota-path)"},
			&ucli.StringFlag{Name: "target", Usage: "write /etc/rugix/system.toml for efi-grub, rpi-tryboot or rpi-uboot"},
			&ucli.StringSliceFlag{Name: "trust-root", Usage: "`PEM` CA certificate devices verify update bundle signatures against (repeatable; one certificate per file)"},
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 0 {
				return usageError(c, "bake takes no arguments, got %q", c.Args().First())
			}
			if c.Bool("use-bundle-hash") && c.String("ota-path") == "" {
				return usageError(c, "--use-bundle-hash needs --ota-path")
			}
			g := globals(c)
			opts := bake.Options{
				System: c.String("system"), Version: c.String("version"), ReleaseID: c.String("release-id"),
				OTAPath: c.String("ota-path"), UseBundleHash: c.Bool("use-bundle-hash"), Target: c.String("target"),
			}
			for _, p := range c.StringSlice("trust-root") {
				certs, err := sign.LoadCertificates(p)
				if err != nil {
					return fmt.Errorf("--trust-root: %w", err)
				}
				if len(certs) != 1 {
					return fmt.Errorf("--trust-root %s: holds %d certificates; give one root certificate per file (Rugix Ctrl reads each root file as one certificate)", p, len(certs))
				}
				opts.TrustRoots = append(opts.TrustRoots, certs[0])
			}
			res, err := bake.Bake(c.Context, c.String("rootfs"), opts)
			if err != nil {
				return err
			}
			if g.JSON {
				return printJSON(g.Stdout, res)
			}
			for _, f := range res.Files {
				state := "unchanged"
				if f.Changed {
					state = "written"
				}
				name := "/" + f.Path
				if f.Resolved != f.Path {
					name += " -> /" + f.Resolved
				}
				fmt.Fprintf(g.Stdout, "%-9s %s\n", state, name)
			}
			fmt.Fprintf(g.Stdout, "baked %s (release %s)\n", res.BuildInfo.Name, res.BuildInfo.Release.ID)
			return nil
		},
	}
}
