package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/otabake/otabake/internal/project"
)

func init() {
	register(func() *ucli.Command {
		return &ucli.Command{
			Name:  "config",
			Usage: "inspect the project configuration",
			Subcommands: []*ucli.Command{{
				Name:  "show",
				Usage: "print the effective configuration and where each value came from",
				Description: "Resolves every setting with the precedence flags > environment > .env >\n" +
					"nexigon-cli configuration > otabake.toml > defaults and prints it with its source\n" +
					"(\"environment NEXIGON_HUB_URL\", \".env:3\", \".nexigon-cli.toml:2\", \"otabake.toml:12\",\n" +
					"\"default\"), says which Hub is used and why, then lists the systems of otabake.toml and\n" +
					"rugix-bakery.toml. The Hub token is found like nexigon-cli's: --hub-token, OTABAKE_HUB_TOKEN,\n" +
					"then the first of --nexigon-cli-config, ./.nexigon-cli.toml and ~/.nexigon/cli.toml, then\n" +
					"NEXIGON_TOKEN only when it is a user or organization token (a deployment token belongs to\n" +
					"devices and is skipped with a warning). Secrets are always shown as <redacted>.\n" +
					"With --json: {\"dir\", \"files\", \"hub\": {url, urlSource, local, tokenKind, tokenSource,\n" +
					"skippedTokens, choice}, \"settings\": [{key, value, source}], \"systems\": [...], \"warnings\"}.",
				Flags: append(projectOverrideFlags(),
					&ucli.BoolFlag{Name: "json", Usage: "print the configuration as JSON (same as the global --json)"}),
				Action: func(c *ucli.Context) error {
					g := globals(c)
					cfg, err := project.Load(g.ProjectDir, project.LoadOptions{Overrides: projectOverrides(c)})
					if err != nil {
						return err
					}
					if g.JSON || c.Bool("json") {
						// Not printJSON: "<redacted>" should read as itself, not as \u003credacted\u003e.
						enc := json.NewEncoder(g.Stdout)
						enc.SetIndent("", "  ")
						enc.SetEscapeHTML(false)
						return enc.Encode(configDocument(cfg))
					}
					return writeConfig(g.Stdout, cfg)
				},
			}},
		}
	})
}

// projectOverrideFlags returns the flags that override project settings (project.Overrides),
// all of them or only those named by keys, so every command spells them the same way.
func projectOverrideFlags(keys ...string) []ucli.Flag {
	var flags []ucli.Flag
	for _, o := range project.Overrides {
		if len(keys) > 0 && !contains(keys, o.Key) {
			continue
		}
		flags = append(flags, &ucli.StringFlag{Name: o.Flag, Usage: o.Usage})
	}
	return flags
}

// projectOverrides collects the project override flags the user set, keyed by setting name,
// for project.LoadOptions.Overrides.
func projectOverrides(c *ucli.Context) map[string]string {
	m := map[string]string{}
	for _, o := range project.Overrides {
		if c.IsSet(o.Flag) {
			m[o.Key] = c.String(o.Flag)
		}
	}
	return m
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// configDoc is the --json form of config show.
type configDoc struct {
	Dir      string            `json:"dir"`
	Files    []string          `json:"files"`
	Hub      hubDoc            `json:"hub"`
	Settings []project.Setting `json:"settings"`
	Systems  []*project.System `json:"systems"`
	Warnings []string          `json:"warnings"`
}

// hubDoc says which Hub the build side uses and why; the token itself never appears.
type hubDoc struct {
	URL           string            `json:"url"`
	URLSource     string            `json:"urlSource"`
	Local         bool              `json:"local"`
	TokenKind     project.TokenKind `json:"tokenKind,omitempty"`
	TokenSource   string            `json:"tokenSource,omitempty"`
	SkippedTokens []string          `json:"skippedTokens,omitempty"`
	Choice        string            `json:"choice"`
}

func configDocument(cfg *project.Config) configDoc {
	h := cfg.Hub
	d := configDoc{Dir: cfg.Dir, Files: cfg.Files, Settings: cfg.Settings(), Systems: cfg.Systems, Warnings: cfg.Warnings,
		Hub: hubDoc{URL: h.URL, URLSource: h.URLSource, Local: h.URL == "", TokenKind: h.TokenKind, TokenSource: h.TokenSource,
			SkippedTokens: h.SkippedTokens, Choice: cfg.HubChoice()}}
	if d.Warnings == nil {
		d.Warnings = []string{}
	}
	if d.Files == nil {
		d.Files = []string{}
	}
	if d.Systems == nil {
		d.Systems = []*project.System{}
	}
	return d
}

// writeConfig prints the human form of config show.
func writeConfig(w io.Writer, cfg *project.Config) error {
	files := "none"
	if len(cfg.Files) > 0 {
		files = strings.Join(cfg.Files, ", ")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "project\t%s\n", cfg.Dir)
	fmt.Fprintf(tw, "files\t%s\n", files)
	fmt.Fprintf(tw, "hub\t%s\n", cfg.HubChoice())
	for _, warn := range cfg.Warnings {
		fmt.Fprintf(tw, "warning\t%s\n", warn)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "SETTING\tVALUE\tSOURCE\n")
	for _, s := range cfg.Settings() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Key, settingText(s), s.Source)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(cfg.Systems) == 0 {
		_, err := fmt.Fprintf(w, "\nno systems (add [systems.NAME] to %s)\n", project.FileName)
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintf(tw, "SYSTEM\tBACKEND\tTARGET\tARCH\tINPUT\tBUNDLE\tSIGNED\tSOURCE\n")
	for _, s := range cfg.Systems {
		signed := "no"
		if s.Signing.Key != "" {
			signed = s.Signing.Key
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Backend, dash(s.Target), dash(s.Arch),
			dash(systemInput(s)), bundleText(s.Bundle), signed, s.Source)
	}
	return tw.Flush()
}

// settingText renders a setting value; Secret values print redacted through their String.
func settingText(s project.Setting) string {
	switch v := s.Value.(type) {
	case nil:
		return "-"
	case project.Secret:
		return dash(v.String())
	case string:
		if v == "" && s.Key == project.KeyHubURL {
			return "(embedded local Hub in .otabake/hub)"
		}
		return dash(v)
	case int64:
		return strconv.FormatInt(v, 10)
	default:
		return fmt.Sprint(v)
	}
}

func systemInput(s *project.System) string {
	switch s.Backend {
	case project.BackendNative:
		return s.Rootfs
	case project.BackendYocto:
		return s.Yocto.DeployDir
	case project.BackendBakery:
		return "layer " + s.Bakery.Layer
	}
	return ""
}

func bundleText(b project.Bundle) string {
	t := b.Chunker + " " + b.Hash
	if b.Compression == "xz" {
		t += " xz-" + strconv.Itoa(b.XZPreset)
	} else {
		t += " " + b.Compression
	}
	if !b.Deduplicate {
		t += " no-dedup"
	}
	return strings.ReplaceAll(t, " ", ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
