package cli

import (
	"fmt"
	"path/filepath"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/otabake/otabake/internal/sign"
)

func init() { register(keysCommand) }

func keysCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "keys",
		Usage: "signing keys for update bundles",
		Subcommands: []*ucli.Command{{
			Name:  "init",
			Usage: "create a DEVELOPMENT CA and bundle signer (ECDSA P-256) and print how to use them",
			Description: "Writes dev-ca.crt, dev-ca.key, dev-signer.crt and dev-signer.key into --dir (keys/ of the\n" +
				"project by default), as Rugix's \"Creating a Self-Signed CA\" recipe makes them: a self-signed\n" +
				"root and a signer with basicConstraints CA:FALSE, keyUsage digitalSignature and no extended key\n" +
				"usage, which Rugix Ctrl 0.8.x and 1.x both accept. Keys are 0600. Existing files are never\n" +
				"replaced. These keys are for development only: for devices in the field, keep the CA key\n" +
				"offline or use a KMS key (signing.key = \"awskms://…\").",
			Flags: []ucli.Flag{
				&ucli.StringFlag{Name: "dir", Usage: "directory for the key files (default: keys/ in the project directory)"},
				&ucli.IntFlag{Name: "signer-days", Value: 365, Usage: "validity of the signer certificate in days (the CA's is 3650)"},
			},
			Action: func(c *ucli.Context) error {
				if c.NArg() != 0 {
					return fmt.Errorf("keys init takes no arguments, got %q (see 'otabake keys init --help')", c.Args().First())
				}
				days := c.Int("signer-days")
				if days < 1 || days > 3650 {
					return fmt.Errorf("--signer-days %d: want 1..3650, the CA is valid for 3650 days (see 'otabake keys init --help')", days)
				}
				g := globals(c)
				dir := c.String("dir")
				if dir == "" {
					dir = filepath.Join(g.ProjectDir, "keys")
				}
				k, err := sign.NewDevKeys(sign.DevKeyOptions{SignerValidity: time.Duration(days) * 24 * time.Hour})
				if err != nil {
					return err
				}
				written, err := k.Write(dir)
				if err != nil {
					return err
				}
				rel := func(name string) string {
					p := filepath.Join(dir, name)
					if r, err := filepath.Rel(g.ProjectDir, p); err == nil && filepath.IsLocal(r) {
						return filepath.ToSlash(r)
					}
					return p
				}
				if g.JSON {
					return printJSON(g.Stdout, map[string]any{
						"developmentOnly": true,
						"files":           written,
						"signing": map[string]any{
							"key": rel(sign.DevSignerKey), "cert": rel(sign.DevSignerCert), "roots": []string{rel(sign.DevCACert)},
						},
					})
				}
				for _, p := range written {
					fmt.Fprintf(g.Stdout, "written   %s\n", p)
				}
				fmt.Fprintf(g.Stdout, `
DEVELOPMENT KEYS ONLY: anyone holding %s can sign updates your devices install.
Use them by adding to each system in otabake.toml:

  [systems.NAME.signing]
  key = %q
  cert = %q
  roots = [%q]   # baked into the image: /etc/rugix/root.crt, /etc/rugix/ctrl.toml

build-release then signs system.rugixb, and the image trusts the CA. Check a bundle with
  otabake bundle verify --root-cert %s build/NAME/system.rugixb
For production, create the CA offline (or use a KMS key) and never commit its key.
`, rel(sign.DevCAKey), rel(sign.DevSignerKey), rel(sign.DevSignerCert), rel(sign.DevCACert), rel(sign.DevCACert))
				return nil
			},
		}},
	}
}
