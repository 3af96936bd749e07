package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	ucli "github.com/urfave/cli/v2"

	"github.com/otabake/otabake/internal/hub/local"
	"github.com/otabake/otabake/internal/hub/server"
	"github.com/otabake/otabake/internal/release"
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
		Subcommands: []*ucli.Command{hubInitCommand(), hubLsCommand(), hubCheckCommand(), hubRepairCommand(), hubServeCommand()},
	}
}

// hubDirFlag is on every subcommand (not on "hub") so that it can follow the subcommand name.
func hubDirFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "hub-dir", EnvVars: []string{"OTABAKE_HUB_DIR"}, Usage: "local Hub directory (default <project-dir>/.otabake/hub)"}
}

// localHubDir is the local Hub directory the command works on.
func localHubDir(c *ucli.Context) string {
	if dir := c.String("hub-dir"); dir != "" {
		return dir
	}
	return release.LocalHubDir(globals(c).ProjectDir)
}

// localHubOptions tell the user (once) when the command waits for another process's lock.
func localHubOptions(c *ucli.Context, readOnly bool) local.Options {
	g := globals(c)
	dir := localHubDir(c)
	var once sync.Once
	return local.Options{ReadOnly: readOnly, OnWait: func() {
		once.Do(func() { g.Log.Warn("waiting for the local Hub lock held by another otabake process…", "dir", dir) })
	}}
}

// openLocalHub opens the local Hub the command works on for reading and writing.
func openLocalHub(c *ucli.Context) (*local.Store, error) {
	return local.Open(localHubDir(c), localHubOptions(c, false))
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
			dir := localHubDir(c)
			// Listing never writes: not the database, not even a new one.
			var tree []local.TreeRepository
			s, err := local.Open(dir, localHubOptions(c, true))
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				return err
			default:
				defer s.Close()
				if tree, err = s.Tree(c.Context, c.Args().First()); err != nil {
					return err
				}
			}
			if tree == nil {
				tree = []local.TreeRepository{}
			}
			if g.JSON {
				return printJSON(g.Stdout, map[string]any{"hubDir": dir, "repositories": tree})
			}
			return printTree(g.Stdout, dir, tree)
		},
	}
}

// printTree writes the human form of `hub ls`: one indented line per item. Names, tags and
// filenames come from whoever published them: anything not printable is escaped, so that a
// name cannot forge lines or send escape sequences to the terminal.
func printTree(w io.Writer, dir string, tree []local.TreeRepository) error {
	var b strings.Builder
	if len(tree) == 0 {
		fmt.Fprintf(&b, "local Hub %s is empty; create a repository with `otabake hub init --repository R --package P`\n", esc(dir))
	}
	for _, r := range tree {
		fmt.Fprintf(&b, "%s (%s)\n", esc(r.Name), esc(r.ID))
		for _, p := range r.Packages {
			fmt.Fprintf(&b, "  %s (%s)\n", esc(p.Name), esc(p.ID))
			for _, v := range p.Versions {
				tags := make([]string, len(v.Tags))
				for i, t := range v.Tags {
					tags[i] = esc(t.Tag)
					if t.Locked {
						tags[i] += " (locked)"
					}
				}
				fmt.Fprintf(&b, "    %s  [%s]  %s", esc(v.ID), strings.Join(tags, ", "), v.CreatedAt.Format(time.RFC3339))
				if v.Name != "" {
					fmt.Fprintf(&b, "  %s", strconv.Quote(v.Name))
				}
				b.WriteByte('\n')
				if len(v.Metadata) > 0 {
					fmt.Fprintf(&b, "      metadata %s\n", esc(string(v.Metadata)))
				}
				for _, a := range v.Assets {
					fmt.Fprintf(&b, "      %s  %d bytes  %s  %s\n", esc(a.Filename), a.Size, esc(string(a.Digest)), esc(string(a.Status)))
					if len(a.Metadata) > 0 {
						fmt.Fprintf(&b, "        metadata %s\n", esc(string(a.Metadata)))
					}
				}
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// esc returns s as it is when every rune is printable, and otherwise quoted like
// strconv.Quote, so that control characters, escape sequences and invalid UTF-8 are shown,
// never interpreted.
func esc(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func hubCheckCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "check",
		Usage:     "check the local Hub's database and blobs; exit status 1 when something is damaged",
		UsageText: "otabake hub check [--json]",
		Description: "Reads everything and changes nothing: bbolt's meta pages and page structure, every\n" +
			"record, and every blob's content against the digest it is named by (so it reads all asset\n" +
			"bytes and takes as long as that). Uploaded assets whose blob is missing are damage;\n" +
			"temporary blobs of killed uploads are listed (the next write removes them). When something\n" +
			"is damaged, 'otabake hub repair' moves the database aside and rebuilds what it can.",
		Flags: []ucli.Flag{hubDirFlag()},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usageError(c, "unexpected argument %q", c.Args().First())
			}
			g := globals(c)
			r, err := local.Check(c.Context, localHubDir(c), localHubOptions(c, true))
			if err != nil {
				return err
			}
			if g.JSON {
				if err := printJSON(g.Stdout, map[string]any{"ok": r.OK(), "check": r}); err != nil {
					return err
				}
			} else if err := printCheck(g.Stdout, r); err != nil {
				return err
			}
			if !r.OK() {
				if g.JSON {
					return ucli.Exit("", 1) // the report above is the one JSON document
				}
				return ucli.Exit(fmt.Sprintf("local Hub %s is damaged (%d problems); run `otabake hub repair`", esc(r.Dir), len(r.Problems)), 1)
			}
			return nil
		},
	}
}

func printCheck(w io.Writer, r *local.CheckReport) error {
	var b strings.Builder
	d := r.Database
	switch {
	case !d.Exists:
		fmt.Fprintf(&b, "database %s: none yet\n", esc(d.Path))
	case d.Error != "":
		fmt.Fprintf(&b, "database %s: %d bytes, DAMAGED: %s\n", esc(d.Path), d.Size, esc(d.Error))
	default:
		n := 0
		for _, c := range d.Records {
			n += c
		}
		fmt.Fprintf(&b, "database %s: %d bytes, txid %d, %d records, ok\n", esc(d.Path), d.Size, d.TxID, n)
	}
	fmt.Fprintf(&b, "blobs: %d (%d bytes), %d bad, %d missing, %d unreferenced\n", r.Blobs.Count, r.Blobs.Bytes, len(r.Blobs.Bad), len(r.Blobs.Missing), len(r.Blobs.Unreferenced))
	for _, t := range r.TempBlobs {
		state := "of a killed upload; the next write to the Hub removes it"
		if t.Live {
			state = "of an upload in progress"
		}
		fmt.Fprintf(&b, "temporary blob %s (%d bytes) %s\n", esc(t.Path), t.Size, state)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem: %s\n", esc(p))
	}
	if r.OK() {
		b.WriteString("ok\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func hubRepairCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "repair",
		Usage:     "move a damaged local Hub database aside and rebuild what can be saved",
		UsageText: "otabake hub repair [--json]",
		Description: "When 'otabake hub check' finds the database damaged, repair renames it to\n" +
			"hub.db.damaged-<time> (nothing is deleted), creates a fresh one and copies every record\n" +
			"bbolt can still read into it. Assets whose blob is missing become Dangling again, so that\n" +
			"publishing the release again uploads them. Blobs no saved asset refers to are listed as\n" +
			"unattached: their bytes are intact, publishing the release again re-attaches them without\n" +
			"uploading. The report is saved as hub.db.damaged-<time>.repair.json. A healthy database is\n" +
			"left alone. Stop 'otabake hub serve' and other otabake commands on this Hub first.",
		Flags: []ucli.Flag{hubDirFlag()},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usageError(c, "unexpected argument %q", c.Args().First())
			}
			g := globals(c)
			r, err := local.Repair(c.Context, localHubDir(c), localHubOptions(c, false), time.Now())
			if err != nil {
				return err
			}
			if g.JSON {
				return printJSON(g.Stdout, r)
			}
			return printRepair(g.Stdout, r)
		},
	}
}

func printRepair(w io.Writer, r *local.RepairReport) error {
	var b strings.Builder
	for _, t := range r.RemovedTemps {
		fmt.Fprintf(&b, "removed temporary blob %s of a killed upload\n", esc(t.Path))
	}
	if r.Healthy {
		fmt.Fprintf(&b, "local Hub %s: the database is healthy; nothing to repair\n", esc(r.Dir))
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(&b, "damage: %s\n", esc(r.Damage))
	fmt.Fprintf(&b, "moved the damaged database to %s\n", esc(r.MovedTo))
	buckets := make([]string, 0, len(r.Salvaged))
	for k := range r.Salvaged {
		buckets = append(buckets, k)
	}
	sort.Strings(buckets)
	if len(buckets) == 0 {
		b.WriteString("saved: nothing could be read from it\n")
	}
	for _, k := range buckets {
		fmt.Fprintf(&b, "saved: %d %s records\n", r.Salvaged[k], k)
	}
	for _, l := range r.Lost {
		fmt.Fprintf(&b, "lost: %s\n", esc(l))
	}
	for _, a := range r.ResetAssets {
		fmt.Fprintf(&b, "asset %s lost its blob and is Dangling again; publish its release again\n", esc(a))
	}
	for _, u := range r.Unattached {
		fmt.Fprintf(&b, "unattached blob %s (%s, %d bytes)\n", esc(u.Path), esc(string(u.Digest)), u.Size)
	}
	if len(r.Unattached) > 0 {
		b.WriteString("publishing the releases again re-attaches unattached blobs without uploading them\n")
	}
	if r.Inventory != "" {
		fmt.Fprintf(&b, "report saved to %s\n", esc(r.Inventory))
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
			"--allow-remote is given. Stops cleanly on SIGINT or SIGTERM.\n\n" +
			"Clients are bounded so that a few stuck or hostile ones cannot lock devices out: headers\n" +
			"must arrive within --header-timeout, a kept-alive connection may idle for --idle-timeout,\n" +
			"and every read of a request body and write of a response must make progress within\n" +
			"--io-timeout. That deadline is per chunk, not per request: a multi-gigabyte upload over a\n" +
			"slow link completes as long as bytes keep moving. At most --max-conns connections are\n" +
			"served at once; more wait to be accepted.",
		Flags: []ucli.Flag{
			hubDirFlag(),
			&ucli.StringFlag{Name: "listen", Value: "127.0.0.1:8470", Usage: "address to listen on (port 0 picks a free port)"},
			&ucli.StringFlag{Name: "token", EnvVars: []string{"OTABAKE_HUB_TOKEN"}, Usage: "bearer token clients must send (default: generate one)"},
			&ucli.BoolFlag{Name: "allow-remote", Usage: "allow listening on non-loopback addresses"},
			&ucli.StringFlag{Name: "base-url", Usage: "public base URL for issued blob URLs (default: the address each client used, so a VM reaching the host as 10.0.2.2 gets URLs it can reach)"},
			&ucli.DurationFlag{Name: "url-ttl", Value: time.Hour, Usage: "how long issued upload and download URLs stay valid"},
			&ucli.DurationFlag{Name: "header-timeout", Value: server.DefaultReadHeaderTimeout, Usage: "a client must send its request headers within this time"},
			&ucli.DurationFlag{Name: "idle-timeout", Value: server.DefaultIdleTimeout, Usage: "a kept-alive connection waiting for its next request is closed after this time"},
			&ucli.DurationFlag{Name: "io-timeout", Value: server.DefaultIOTimeout, Usage: "a client that sends or accepts no bytes for this long is disconnected (per chunk, so slow large transfers still complete)"},
			&ucli.IntFlag{Name: "max-conns", Value: server.DefaultMaxConns, Usage: "connections served at once; more wait until one closes"},
			&ucli.IntFlag{Name: "max-header-bytes", Value: server.DefaultMaxHeaderBytes, Usage: "largest request headers accepted (431 beyond)"},
			&ucli.Int64Flag{Name: "max-input-bytes", Value: server.DefaultMaxInputBytes, Usage: "largest action input (JSON) accepted, the Hub's limit by default (413 beyond)"},
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
	limits := server.Limits{
		ReadHeaderTimeout: c.Duration("header-timeout"),
		IdleTimeout:       c.Duration("idle-timeout"),
		IOTimeout:         c.Duration("io-timeout"),
		MaxConns:          c.Int("max-conns"),
		MaxHeaderBytes:    c.Int("max-header-bytes"),
		MaxInputBytes:     c.Int64("max-input-bytes"),
	}
	for name, bad := range map[string]bool{
		"--header-timeout": limits.ReadHeaderTimeout <= 0, "--idle-timeout": limits.IdleTimeout <= 0,
		"--io-timeout": limits.IOTimeout <= 0, "--max-conns": limits.MaxConns <= 0,
		"--max-header-bytes": limits.MaxHeaderBytes <= 0, "--max-input-bytes": limits.MaxInputBytes <= 0,
	} {
		if bad {
			return usageError(c, "%s must be positive", name)
		}
	}
	h, err := server.New(server.Config{Store: s, Token: token, BaseURL: base, URLTTL: c.Duration("url-ttl"), Log: g.Log, Limits: limits})
	if err != nil {
		return err
	}
	srv := server.NewHTTPServer(h, limits)
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
	go func() { errc <- srv.Serve(server.LimitListener(ln, limits.MaxConns)) }()
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
