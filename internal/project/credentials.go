package project

import (
	"fmt"
	"strings"
)

// OTABakeTokenEnv is the environment variable that gives the build side its Hub token above
// every configuration file.
const OTABakeTokenEnv = "OTABAKE_HUB_TOKEN"

// resolveToken picks the build side's Hub token, the way nexigon-cli authenticates, so that a
// project laid out like the Nexigon templates (.env holding the devices' deployment token,
// .nexigon-cli.toml or ~/.nexigon/cli.toml holding a user token) sends the user token:
//
//  1. flag --hub-token, 2. OTABAKE_HUB_TOKEN: explicit choices; a kind nexigon-cli would
//     refuse is an error.
//  3. token of the nexigon-cli configuration (readNexigonCLIConfig); a kind nexigon-cli would
//     refuse is an error, as it is for nexigon-cli.
//  4. the token variable ([hub] token_env, default NEXIGON_TOKEN) from the environment, then
//     from .env: used only when it is a user or organization API token. In the templates it is
//     the devices' deployment token, which is skipped with a warning.
//
// A deployment token is never the result. When nothing usable remains, Token is empty and
// OpenHub names the fix.
func (l *loader) resolveToken() error {
	h := &l.cfg.Hub
	set := func(tok, from string, kind TokenKind) {
		h.Token, h.TokenSource, h.TokenKind = Secret(tok), from, kind
		l.record(KeyHubToken, h.Token, from)
	}
	explicit := func(tok, from string) error {
		if strings.ContainsAny(tok, " \t\r\n") {
			return fmt.Errorf("%s: %s: the token contains white space", from, KeyHubToken)
		}
		kind := ClassifyToken(tok)
		if !kind.BuildSideUsable() {
			return fmt.Errorf("%s: %s: the token is %s; the build side authenticates like nexigon-cli, with a user token (u_sk_…) or an organization API token (org_sk_…)%s",
				from, KeyHubToken, kind.Describe(), deviceHint(kind))
		}
		set(tok, from, kind)
		return nil
	}

	if v, ok := l.overrides[KeyHubToken]; ok && v != "" {
		return explicit(v, "flag --hub-token")
	}
	if v := l.env[OTABakeTokenEnv]; v != "" {
		return explicit(v, "environment "+OTABakeTokenEnv)
	}
	if v, ok := l.cli["token"]; ok && v != "" {
		from := l.cliDoc.where("token")
		if err := explicit(v, from); err != nil {
			return fmt.Errorf("%w (nexigon-cli refuses this file too: run 'nexigon-cli configure')", err)
		}
		return nil
	}
	var candidates [][3]string // value, source, label
	if v := l.env[h.TokenEnv]; v != "" {
		candidates = append(candidates, [3]string{v, "environment " + h.TokenEnv, h.TokenEnv + " in the environment"})
	}
	if e, ok := l.dotenv[h.TokenEnv]; ok && e.Value != "" {
		at := fmt.Sprintf("%s:%d", DotEnvFileName, e.Line)
		candidates = append(candidates, [3]string{e.Value, at, h.TokenEnv + " in " + at})
	}
	for _, c := range candidates {
		tok, from, label := c[0], c[1], c[2]
		if strings.ContainsAny(tok, " \t\r\n") {
			return fmt.Errorf("%s: %s: the token contains white space", from, KeyHubToken)
		}
		kind := ClassifyToken(tok)
		if kind.BuildSideUsable() {
			set(tok, from, kind)
			return nil
		}
		skipped := fmt.Sprintf("%s is %s", label, kind.Describe())
		if kind == TokenDeployment {
			skipped += ", which belongs to devices (the agent's provisioning); the build side never sends it"
		}
		h.SkippedTokens = append(h.SkippedTokens, skipped)
		l.warn(skipped + ": skipped")
	}
	l.record(KeyHubToken, Secret(""), "unset")
	return nil
}

func deviceHint(kind TokenKind) string {
	if kind == TokenDeployment {
		return ": a deployment token belongs to devices"
	}
	return ""
}

// checkTokenHub warns when the token of a nexigon-cli configuration goes to another Hub than
// the one that configuration names (the URL came from a higher-ranked source).
func (l *loader) checkTokenHub() {
	h := &l.cfg.Hub
	if h.Token == "" || l.cliDoc == nil || h.TokenSource != l.cliDoc.where("token") || h.URL == "" {
		return
	}
	cliURL := strings.TrimRight(strings.TrimSpace(l.cli["hub-url"]), "/")
	if cliURL != "" && cliURL != h.URL {
		l.warn(fmt.Sprintf("the token of %s was configured for %s but is sent to %s (hub.url from %s)", l.cliDoc.name, cliURL, h.URL, h.URLSource))
	}
}

// HubChoice says in one sentence which Hub the build side uses and why, for config show and
// messages. It never includes the token.
func (c *Config) HubChoice() string {
	h := c.Hub
	if h.URL == "" {
		if strings.HasPrefix(h.URLSource, "flag ") {
			return "embedded local Hub in .otabake/hub (--hub-url \"\" selects it)"
		}
		return "embedded local Hub in .otabake/hub: no Hub URL is configured (--hub-url, NEXIGON_HUB_URL in the environment or .env, hub-url of .nexigon-cli.toml or ~/.nexigon/cli.toml, [hub] url of otabake.toml)"
	}
	tok := "no usable token (run 'nexigon-cli configure' or put hub-url and token in .nexigon-cli.toml)"
	if h.Token != "" {
		tok = fmt.Sprintf("%s from %s", strings.TrimPrefix(strings.TrimPrefix(h.TokenKind.Describe(), "a "), "an "), h.TokenSource)
	}
	return fmt.Sprintf("Nexigon Hub %s (URL from %s; %s)", h.URL, h.URLSource, tok)
}
