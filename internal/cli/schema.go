package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/otabake/otabake/internal/schema"
)

func init() { register(schemaCommand) }

func schemaCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "schema",
		Usage: "list, show and validate against the JSON Schemas of otabake's file formats",
		Description: "Every file otabake reads or writes has a JSON Schema (draft 2020-12) with an $id under\n" +
			schema.IDPrefix + ". TOML files reference theirs with a first line\n" +
			"'#:schema " + schema.IDPrefix + "otabake.schema.json', which editors (taplo, Even Better TOML)\n" +
			"use for completion and checks.",
		Subcommands: []*ucli.Command{schemaListCommand(), schemaShowCommand(), schemaValidateCommand()},
	}
}

func schemaListCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "list",
		Usage:     "list the schema kinds with their $id",
		ArgsUsage: " ",
		Action: func(c *ucli.Context) error {
			if c.NArg() != 0 {
				return usageError(c, "takes no arguments")
			}
			g := globals(c)
			infos, err := schema.List()
			if err != nil {
				return err
			}
			if g.JSON {
				return printJSON(g.Stdout, infos)
			}
			tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tDOCUMENT\tID")
			for _, in := range infos {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", in.Kind, in.Title, in.ID)
			}
			return tw.Flush()
		},
	}
}

func schemaShowCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "show",
		Usage:     "print the JSON Schema of KIND",
		ArgsUsage: "KIND",
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usageError(c, "want exactly one argument, the schema kind (see 'otabake schema list')")
			}
			data, err := schema.Source(c.Args().First())
			if err != nil {
				return err
			}
			_, err = globals(c).Stdout.Write(data)
			return err
		},
	}
}

// validateResult is the --json output of schema validate.
type validateResult struct {
	File       string             `json:"file"`
	Kind       string             `json:"kind"`
	Valid      bool               `json:"valid"`
	Violations []schema.Violation `json:"violations"`
}

func schemaValidateCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "validate",
		Usage:     "check a file against the schema of KIND (TOML for *.toml, JSON otherwise)",
		ArgsUsage: "[KIND] FILE",
		Description: "Prints every violation with its JSON pointer and the schema rule, and exits 1 when\n" +
			"there is one. KIND may be left out when the file has a '#:schema' comment or a well-known\n" +
			"name (otabake.toml, agent.toml, ota.json, rugix-bundle.toml, system-build-info.json).\n" +
			"Kinds: see 'otabake schema list'.",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print the result as JSON (same as the global --json)"},
		},
	}, func(c *ucli.Context, args []string) error {
		g := globals(c)
		asJSON := g.JSON || c.Bool("json")
		var kindName, file string
		switch len(args) {
		case 1:
			file = args[0]
			k, ok, err := schema.KindOfFile(file)
			if err != nil {
				return err
			}
			if !ok {
				return usageError(c, "%s has no #:schema comment and no well-known name; give the KIND", file)
			}
			kindName = k
		case 2:
			kindName, file = args[0], args[1]
		default:
			return usageError(c, "want KIND FILE")
		}
		err := schema.ValidateFile(kindName, file)
		var se *schema.Error
		if err != nil && !errors.As(err, &se) {
			return err
		}
		res := validateResult{File: file, Kind: kindName, Valid: err == nil, Violations: []schema.Violation{}}
		if se != nil {
			res.Violations = se.Violations
		}
		if asJSON {
			if err := printJSON(g.Stdout, res); err != nil {
				return err
			}
		} else if res.Valid {
			fmt.Fprintf(g.Stdout, "%s: valid %s\n", file, kindName)
		} else {
			for _, v := range res.Violations {
				p := v.Pointer
				if p == "" {
					p = "/"
				}
				fmt.Fprintf(g.Stdout, "%s: %s: %s (rule %s)\n", file, p, v.Message, v.Rule)
			}
		}
		if !res.Valid && asJSON {
			return ucli.Exit("", 1) // the result above is the one JSON document
		}
		if !res.Valid {
			return ucli.Exit(fmt.Sprintf("%s: %d schema violation(s) of %s", file, len(res.Violations), kindName), 1)
		}
		return nil
	})
}
