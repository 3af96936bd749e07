package release

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

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
	if cfg.Hub.Token.Reveal() == "" {
		return nil, nil, "", fmt.Errorf("no token for the Hub at %s: set %s (or token in .nexigon-cli.toml)", cfg.Hub.URL, cfg.Hub.TokenEnv)
	}
	c, err := nexigon.New(cfg.Hub.URL, cfg.Hub.Token.Reveal())
	if err != nil {
		return nil, nil, "", fmt.Errorf("Hub at %s: %w", cfg.Hub.URL, err)
	}
	return c, io.NopCloser(nil), "Hub " + cfg.Hub.URL, nil
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
