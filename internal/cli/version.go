package cli

import (
	"runtime"

	ucli "github.com/urfave/cli/v2"
)

func init() {
	register(func() *ucli.Command {
		return &ucli.Command{
			Name:  "version",
			Usage: "print the otabake version",
			Action: func(c *ucli.Context) error {
				g := globals(c)
				if g.JSON {
					return printJSON(g.Stdout, map[string]string{"version": Version, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH})
				}
				_, werr := g.Stdout.Write([]byte("otabake " + Version + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"))
				return werr
			},
		}
	})
}
