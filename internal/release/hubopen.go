package release

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/local"
	"github.com/otabake/otabake/internal/hub/nexigon"
	"github.com/otabake/otabake/internal/project"
)

// LocalHubDir is where the embedded local Hub of a project lives.
func LocalHubDir(projectDir string) string { return filepath.Join(projectDir, ".otabake", "hub") }

// HubOptions tune OpenHub.
type HubOptions struct {
	// OnLockWait is called when the local Hub is locked by another process.
	OnLockWait func()
}

// OpenHub returns the Hub a project publishes to: Nexigon Hub when a Hub URL is configured,
// otherwise the embedded local Hub under <project>/.otabake/hub. The closer releases it. The
// description names the Hub for messages ("local Hub .otabake/hub" or the URL), never the token.
func OpenHub(ctx context.Context, cfg *project.Config, opts HubOptions) (hub.Hub, io.Closer, string, error) {
	if cfg.Hub.URL == "" {
		dir := LocalHubDir(cfg.Dir)
		s, err := local.Open(dir, local.Options{OnWait: opts.OnLockWait})
		if err != nil {
			return nil, nil, "", fmt.Errorf("open the local Hub: %w", err)
		}
		return s, s, "local Hub " + dir, nil
	}
	tok := cfg.Hub.Token.Reveal()
	if tok == "" {
		return nil, nil, "", NoTokenError(cfg)
	}
	// project.Load only yields user and organization tokens; a Config built another way is
	// checked again, because a deployment token must never leave the device side.
	if kind := project.ClassifyToken(tok); !kind.BuildSideUsable() {
		return nil, nil, "", fmt.Errorf("the Hub token (%s) is %s: the build side needs a user token (u_sk_…) or an organization API token (org_sk_…)", cfg.Hub.TokenSource, kind.Describe())
	}
	c, err := nexigon.New(cfg.Hub.URL, tok)
	if err != nil {
		return nil, nil, "", fmt.Errorf("Hub at %s: %w", cfg.Hub.URL, err)
	}
	return c, io.NopCloser(nil), "Hub " + cfg.Hub.URL, nil
}

// NoTokenError explains that no usable token was found for the configured Hub, naming the
// tokens that were skipped and the fix nexigon-cli users know.
func NoTokenError(cfg *project.Config) error {
	skipped := ""
	if len(cfg.Hub.SkippedTokens) > 0 {
		skipped = " (" + strings.Join(cfg.Hub.SkippedTokens, "; ") + ")"
	}
	return fmt.Errorf("no user or organization API token for the Hub at %s%s: the build side authenticates like nexigon-cli: "+
		"run 'nexigon-cli configure' (writes ~/.nexigon/cli.toml) or put hub-url and token in .nexigon-cli.toml, or set %s",
		cfg.Hub.URL, skipped, project.OTABakeTokenEnv)
}

// RequirePackage checks that the Hub repository and package are configured, naming the
// variable to set when one is missing.
func RequirePackage(cfg *project.Config) error {
	if cfg.Hub.Repository == "" {
		return fmt.Errorf("no Hub repository configured: set NEXIGON_REPOSITORY in .env (or [hub] repository in otabake.toml)")
	}
	if cfg.Hub.Package == "" {
		return fmt.Errorf("no Hub package configured: set NEXIGON_PACKAGE in .env (or [hub] package in otabake.toml)")
	}
	return nil
}
