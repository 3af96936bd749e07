package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/otabake/otabake/internal/hub/local"
	"github.com/otabake/otabake/internal/hub/server"
)

func init() {
	register(hubCommand)
}

func hubCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "hub",
		Usage: "manage and serve the embedded local Hub (.otabake/hub)",
		Description: "With no Hub configured, otabake keeps releases in a local Hub under <project>/.otabake/hub:\n" +
			"metadata in hub.db, asset bytes content-addressed under blobs/. 'hub serve' exposes it over\n" +
			"the Nexigon Hub HTTP actions API so that devices and HTTP clients can use it.",
		Subcommands: []*ucli.Command{hubInitCommand(), hubLsCommand(), hubServeCommand()},
	}
}

// hubDirFlag is on every subcommand (not on "hub") so that it can follow the subcommand name.
func hubDirFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "hub-dir", EnvVars: []string{"OTABAKE_HUB_DIR"}, Usage: "local Hub directory (default <project-dir>/.otabake/hub)"}
}

// openLocalHub opens the local Hub the command works on, telling the user (once) when it waits
// for another process's lock.
func openLocalHub(c *ucli.Context) (*local.Store, error) {
	g := globals(c)
	dir := c.String("hub-dir")
	if dir == "" {
		dir = filepath.Join(g.ProjectDir, ".otabake", "hub")
	}
	var once sync.Once
	return local.Open(dir, local.Options{OnWait: func() {
		once.Do(func() { g.Log.Warn("waiting for the local Hub lock held by another otabake process…", "dir", dir) })
	}})
}

func hubInitCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "init",
		Usage:     "create a repository and a package in the local Hub (idempotent)",
		UsageText: "otabake hub init --repository R --package P",
		Flags: []ucli.Flag{
			hubDirFlag(),
			&ucli.StringFlag{Name: "repository", Usage: "repository name", Required: true},
			&ucli.StringFlag{Name: "package", Usage: "package name", Required: true},
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usageError(c, "unexpected argument %q", c.Args().First())
			}
			g := globals(c)
			s, err := openLocalHub(c)
			if err != nil {
				return err
			}
			defer s.Close()
			repo, pkg := c.String("repository"), c.String("package")
			repoID, pkgID, err := s.Init(c.Context, repo, pkg)
			if err != nil {
				return err
			}
			if g.JSON {
				return printJSON(g.Stdout, map[string]string{"hubDir": s.Dir(), "repository": repo, "repositoryId": repoID, "package": pkg, "packageId": pkgID})
			}
			_, err = fmt.Fprintf(g.Stdout, "local Hub %s: repository %s (%s), package %s (%s)\n", s.Dir(), repo, repoID, pkg, pkgID)
			return err
		},
	}
}

func hubLsCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "ls",
		Usage:     "list repositories, packages, versions with tags, and assets of the local Hub",
		UsageText: "otabake hub ls [REPOSITORY[/PACKAGE[/TAG]]]",
		Flags:     []ucli.Flag{hubDirFlag()},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 1 {
				return usageError(c, "want at most one path")
			}
			g := globals(c)
			s, err := openLocalHub(c)
			if err != nil {
				return err
			}
			defer s.Close()
			tree, err := s.Tree(c.Context, c.Args().First())
			if err != nil {
				return err
			}
			if tree == nil {
				tree = []local.TreeRepository{}
			}
			if g.JSON {
				return printJSON(g.Stdout, map[string]any{"hubDir": s.Dir(), "repositories": tree})
			}
			return printTree(g.Stdout, s.Dir(), tree)
		},
	}
}

// printTree writes the human form of `hub ls`: one indented line per item.
func printTree(w io.Writer, dir string, tree []local.TreeRepository) error {
	var b strings.Builder
	if len(tree) == 0 {
		fmt.Fprintf(&b, "local Hub %s is empty; create a repository with `otabake hub init --repository R --package P`\n", dir)
	}
	for _, r := range tree {
		fmt.Fprintf(&b, "%s (%s)\n", r.Name, r.ID)
		for _, p := range r.Packages {
			fmt.Fprintf(&b, "  %s (%s)\n", p.Name, p.ID)
			for _, v := range p.Versions {
				tags := make([]string, len(v.Tags))
				for i, t := range v.Tags {
					tags[i] = t.Tag
					if t.Locked {
						tags[i] += " (locked)"
					}
				}
				fmt.Fprintf(&b, "    %s  [%s]  %s", v.ID, strings.Join(tags, ", "), v.CreatedAt.Format(time.RFC3339))
				if v.Name != "" {
					fmt.Fprintf(&b, "  %q", v.Name)
				}
				b.WriteByte('\n')
				if len(v.Metadata) > 0 {
					fmt.Fprintf(&b, "      metadata %s\n", v.Metadata)
				}
				for _, a := range v.Assets {
					fmt.Fprintf(&b, "      %s  %d bytes  %s  %s\n", a.Filename, a.Size, a.Digest, a.Status)
					if len(a.Metadata) > 0 {
						fmt.Fprintf(&b, "        metadata %s\n", a.Metadata)
					}
				}
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func hubServeCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "serve",
		Usage:     "serve the local Hub over the Nexigon Hub HTTP actions API",
		UsageText: "otabake hub serve [--listen 127.0.0.1:PORT] [--token T]",
		Description: "Serves POST /api/v1/actions/invoke/<action> with bearer-token authentication and\n" +
			"presigned, expiring, range-capable blob URLs. Without --token (or $OTABAKE_HUB_TOKEN) a\n" +
			"token is generated and printed once. Only loopback addresses are served unless\n" +
			"--allow-remote is given. Stops cleanly on SIGINT or SIGTERM.",
		Flags: []ucli.Flag{
			hubDirFlag(),
			&ucli.StringFlag{Name: "listen", Value: "127.0.0.1:8470", Usage: "address to listen on (port 0 picks a free port)"},
			&ucli.StringFlag{Name: "token", EnvVars: []string{"OTABAKE_HUB_TOKEN"}, Usage: "bearer token clients must send (default: generate one)"},
			&ucli.BoolFlag{Name: "allow-remote", Usage: "allow listening on non-loopback addresses"},
			&ucli.StringFlag{Name: "base-url", Usage: "public base URL for issued blob URLs (default: the address each client used, so a VM reaching the host as 10.0.2.2 gets URLs it can reach)"},
			&ucli.DurationFlag{Name: "url-ttl", Value: time.Hour, Usage: "how long issued upload and download URLs stay valid"},
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usageError(c, "unexpected argument %q", c.Args().First())
			}
			return serveHub(c)
		},
	}
}

// checkListen refuses addresses that are not loopback unless remote access is allowed: the
// local Hub is a development tool and a token alone over plain HTTP is not meant for networks.
func checkListen(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: want HOST:PORT: %w", addr, err)
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--listen %q is not a loopback address; pass --allow-remote to serve the local Hub to other machines", addr)
}

func serveHub(c *ucli.Context) error {
	g := globals(c)
	addr := c.String("listen")
	if err := checkListen(addr, c.Bool("allow-remote")); err != nil {
		return err
	}
	token, generated := c.String("token"), false
	if token == "" {
		token, generated = local.RandomToken(), true
	}
	s, err := openLocalHub(c)
	if err != nil {
		return err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	defer ln.Close()
	base := c.String("base-url")
	h, err := server.New(server.Config{Store: s, Token: token, BaseURL: base, URLTTL: c.Duration("url-ttl"), Log: g.Log})
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	if g.JSON {
		out := map[string]string{"url": base, "hubDir": s.Dir()}
		if generated {
			out["token"] = token
		}
		if err := printJSON(g.Stdout, out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.Stdout, "serving local Hub %s at %s (NEXIGON_HUB_URL=%s)\n", s.Dir(), base, base)
		if generated {
			fmt.Fprintf(g.Stdout, "token: %s\n(generated for this run; pass --token or set OTABAKE_HUB_TOKEN to choose one)\n", token)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve local Hub: %w", err)
	case <-c.Context.Done():
	}
	g.Log.Info("shutting down the local Hub server")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down local Hub server: %w", err)
	}
	return nil
}
