package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/otabake/otabake/internal/hub/local"
	"github.com/otabake/otabake/internal/hub/server"
	"github.com/otabake/otabake/internal/testkit"
)

// credToken makes a well-formed Nexigon secret ID (nexigon-ids: tag, "_", base-58 raw part of
// the tag's size).
func credToken(tag, mark string) string { return tag + "_" + mark + strings.Repeat("z", 66-len(mark)) }

var (
	credUser       = credToken("u_sk", "TmpUser")
	credDeployment = credToken("deployment", "TmpDevice")
)

// recorder is a Hub server that remembers every request's method, path and Authorization.
type recorder struct {
	mu   sync.Mutex
	reqs []string // "METHOD PATH AUTH"
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

// recordingHub serves a local Hub with repository demo and package os, accepting credUser.
func recordingHub(t *testing.T) (*recorder, string) {
	t.Helper()
	store, err := local.Open(t.TempDir(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, _, err := store.Init(context.Background(), "demo", "os"); err != nil {
		t.Fatal(err)
	}
	h, err := server.New(server.Config{Store: store, Token: credUser})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, req.Method+" "+req.URL.Path+" "+req.Header.Get("Authorization"))
		rec.mu.Unlock()
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

// templateProject lays a project out like nexigon-rugix-template's CI leaves it: .env with the
// devices' deployment token, the user token in cliConfig (".nexigon-cli.toml" or
// "~/.nexigon/cli.toml", or nowhere when ""), NEXIGON_HUB_URL pointing at hubURL, and the
// nexigon-cli binary downloaded into the checkout (untracked).
func templateProject(t *testing.T, hubURL, cliConfig string) string {
	t.Helper()
	dir := newProject(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("OTABAKE_HUB_TOKEN", "")
	t.Setenv("NEXIGON_HUB_URL", hubURL)
	testkit.WriteFile(t, filepath.Join(dir, ".env"), "NEXIGON_HUB_URL=\""+hubURL+"\"\nNEXIGON_TOKEN=\""+credDeployment+"\"\nNEXIGON_REPOSITORY=demo\nNEXIGON_PACKAGE=os\n")
	cli := "  hub-url = \"" + hubURL + "\"\n  token = \"" + credUser + "\"\n"
	// nexigon-cli writes its configuration private (mode 0600).
	switch cliConfig {
	case ".nexigon-cli.toml":
		writePrivate(t, filepath.Join(dir, ".nexigon-cli.toml"), cli)
		testkit.WriteFile(t, filepath.Join(dir, ".gitignore"), ".otabake/\nbuild/\n.release-env\n.release.env\n.nexigon-cli.toml\n")
		git(t, dir, "commit", "-q", "-am", "ignore the CLI configuration")
	case "~/.nexigon/cli.toml":
		writePrivate(t, filepath.Join(home, ".nexigon", "cli.toml"), cli)
	}
	testkit.WriteFile(t, filepath.Join(dir, "nexigon-cli"), "\x7fELF downloaded by CI")
	return dir
}

func writePrivate(t *testing.T, path, content string) {
	t.Helper()
	testkit.WriteFile(t, path, content)
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTemplateCredentials: with the deployment token in .env and the user token in
// nexigon-cli's configuration, every build-side request carries the user token, never the
// deployment token; the untracked nexigon-cli binary only draws a warning.
func TestTemplateCredentials(t *testing.T) {
	for _, where := range []string{".nexigon-cli.toml", "~/.nexigon/cli.toml"} {
		t.Run(where, func(t *testing.T) {
			rec, url := recordingHub(t)
			dir := templateProject(t, url, where)

			code, out, errs := run(t, "-C", dir, "prepare-release")
			if code != 0 {
				t.Fatalf("prepare-release: exit %d\n%s\n%s", code, out, errs)
			}
			if want := "untracked files are not part of the release's source (nexigon-cli)"; !strings.Contains(errs, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errs)
			}
			env := readEnv(t, dir)
			fakeBuild(t, dir, "efi", env["VERSION"])
			mustRun(t, "-C", dir, "upload-release")
			mustRun(t, "-C", dir, "promote-release", "--from-floating", "--tag", "stable", "--partial", "efi")

			reqs := rec.seen()
			actions := 0
			for _, r := range reqs {
				if strings.Contains(r, credDeployment) || strings.Contains(r, "deployment_") {
					t.Fatalf("the deployment token was sent: %s", strings.SplitN(r, " ", 3)[1])
				}
				f := strings.SplitN(r, " ", 3)
				switch {
				case strings.HasPrefix(f[1], "/api/v1/actions/"):
					actions++
					if f[2] != "Bearer "+credUser {
						t.Errorf("action request without the user token: %s %s", f[0], f[1])
					}
				case f[2] != "" && f[2] != "Bearer "+credUser:
					// Blob URLs are presigned and need no token; any token sent is the user's.
					t.Errorf("request with another credential: %s %s", f[0], f[1])
				}
			}
			if actions < 5 {
				t.Fatalf("only %d action requests recorded: %v", actions, reqs)
			}

			// config show names the sources and redacts the token; --json after the command parses.
			code, out, _ = run(t, "-C", dir, "config", "show", "--json")
			if code != 0 {
				t.Fatalf("config show --json: exit %d", code)
			}
			var doc struct {
				Hub struct {
					URL, URLSource, TokenKind, TokenSource, Choice string
					Local                                          bool
				}
				Settings []struct {
					Key    string
					Value  any
					Source string
				}
				Warnings []string
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatalf("config show --json does not parse: %v\n%s", err, out)
			}
			if doc.Hub.URL != url || doc.Hub.URLSource != "environment NEXIGON_HUB_URL" || doc.Hub.TokenKind != "user" ||
				!strings.HasPrefix(doc.Hub.TokenSource, where+":") || doc.Hub.Local {
				t.Errorf("hub = %+v", doc.Hub)
			}
			for _, s := range doc.Settings {
				if s.Key == "hub.token" && s.Value != "<redacted>" {
					t.Errorf("hub.token = %v", s.Value)
				}
			}
			if strings.Contains(out, credUser) || strings.Contains(out, credDeployment) {
				t.Fatal("config show --json leaks a token")
			}
			human := mustRun(t, "-C", dir, "config", "show")
			if !strings.Contains(human, "hub      Nexigon Hub "+url+" (URL from environment NEXIGON_HUB_URL; user token (u_sk_…) from "+where+":2)") {
				t.Errorf("config show does not say which Hub and why:\n%s", human)
			}
			if strings.Contains(human, credUser) || strings.Contains(human, credDeployment) {
				t.Fatal("config show leaks a token")
			}
		})
	}
}

// TestDeploymentTokenOnly: with only the devices' deployment token, prepare-release fails
// before any request and names the fix.
func TestDeploymentTokenOnly(t *testing.T) {
	rec, url := recordingHub(t)
	dir := templateProject(t, url, "")
	code, out, errs := run(t, "-C", dir, "prepare-release")
	if code == 0 {
		t.Fatalf("prepare-release succeeded with a deployment token only:\n%s", out)
	}
	for _, want := range []string{"no user or organization API token for the Hub at " + url, "NEXIGON_TOKEN in .env:2 is a device deployment token",
		"nexigon-cli configure", ".nexigon-cli.toml"} {
		if !strings.Contains(errs, want) {
			t.Errorf("error lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(out+errs, credDeployment) {
		t.Fatal("the deployment token was printed")
	}
	if reqs := rec.seen(); len(reqs) != 0 {
		t.Fatalf("requests were sent: %v", reqs)
	}
	if _, err := os.Stat(filepath.Join(dir, ".release-env")); err == nil {
		t.Fatal(".release-env written")
	}
}

// TestModifiedTrackedFileRefused: a modified tracked file refuses the release; the untracked
// nexigon-cli binary next to it is not what the error names.
func TestModifiedTrackedFileRefused(t *testing.T) {
	_, url := recordingHub(t)
	dir := templateProject(t, url, "~/.nexigon/cli.toml")
	testkit.WriteFile(t, filepath.Join(dir, ".gitignore"), "changed\n")
	mustFail(t, "M .gitignore", "-C", dir, "prepare-release")
	code, _, errs := run(t, "-C", dir, "prepare-release")
	if code == 0 || strings.Contains(errs, "nexigon-cli,") || !strings.Contains(errs, "--allow-dirty") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	mustRun(t, "-C", dir, "prepare-release", "--allow-dirty")
}
