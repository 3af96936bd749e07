package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/otabake/otabake/internal/tool"
)

// errNotGitRepo reports that the project is not inside a git work tree.
var errNotGitRepo = errors.New("not a git repository")

// gitState is what the release identity needs from git.
type gitState struct {
	Commit string // short commit of HEAD, as `git rev-parse --short HEAD` prints it
	Branch string // current branch, "" on a detached HEAD
	// Changes are `git status --porcelain` entries of tracked files ("M path", "A path",
	// "D path", "R path"), staged or not, outside otabake's own outputs: what makes the tree
	// dirty, as for `git describe --dirty`, which ignores untracked files.
	Changes []string
	// Untracked are the paths of untracked, not ignored files (such as the nexigon-cli binary
	// the templates' CI downloads into the checkout): listed in a warning, never a refusal.
	Untracked []string
}

// gitIgnoredOutputs are project-relative paths that otabake itself writes or that are never
// committed by design (.env holds secrets); they do not make a work tree dirty.
var gitIgnoredOutputs = []string{EnvFileName, LegacyEnvFileName, ".env", ".otabake/", "build/"}

// maxUntrackedListed bounds how many untracked paths the prepare-release warning lists.
const maxUntrackedListed = 10

// readGit inspects the git work tree containing dir.
func readGit(ctx context.Context, dir string) (*gitState, error) {
	if _, err := tool.Find("git", "git"); err != nil {
		return nil, err
	}
	if _, err := runGit(ctx, dir, "rev-parse", "--is-inside-work-tree"); err != nil {
		if strings.Contains(err.Error(), "not a git repository") {
			return nil, errNotGitRepo
		}
		return nil, err
	}
	var st gitState
	commit, err := runGit(ctx, dir, "rev-parse", "--short", "HEAD")
	if err != nil {
		return nil, fmt.Errorf("git repository has no commit to name the release after: %w", err)
	}
	st.Commit = commit
	// symbolic-ref exits 1 with no output on a detached HEAD; that is not an error here.
	if branch, err := runGit(ctx, dir, "symbolic-ref", "--quiet", "--short", "HEAD"); err == nil {
		st.Branch = branch
	}
	prefix, err := runGit(ctx, dir, "rev-parse", "--show-prefix")
	if err != nil {
		return nil, err
	}
	out, err := runGitRaw(ctx, dir, "status", "--porcelain=v1", "-z", "--untracked-files=normal")
	if err != nil {
		return nil, err
	}
	st.Changes, st.Untracked = parseStatus(out, prefix)
	return &st, nil
}

// parseStatus turns NUL-separated porcelain v1 output into "XY path" entries of tracked files
// and the paths of untracked ones, skipping the project's own outputs (paths in porcelain
// output are relative to the repository root).
func parseStatus(out []byte, prefix string) (changes, untracked []string) {
	fields := bytes.Split(out, []byte{0})
	for i := 0; i < len(fields); i++ {
		f := string(fields[i])
		if len(f) < 4 {
			continue
		}
		code, p := strings.TrimSpace(f[:2]), f[3:]
		if f[0] == 'R' || f[0] == 'C' {
			i++ // the next field is the rename source
		}
		if ignoredOutput(p, prefix) {
			continue
		}
		if code == "??" {
			untracked = append(untracked, p)
			continue
		}
		changes = append(changes, code+" "+p)
	}
	return changes, untracked
}

// UntrackedFiles lists the untracked, not ignored files of the git work tree containing dir,
// outside otabake's own outputs, for the warning of prepare-release; nil outside git.
func UntrackedFiles(ctx context.Context, dir string) []string {
	st, err := readGit(ctx, dir)
	if err != nil {
		return nil
	}
	return st.Untracked
}

func ignoredOutput(p, prefix string) bool {
	rel, ok := strings.CutPrefix(p, prefix)
	if !ok {
		return false
	}
	for _, ig := range gitIgnoredOutputs {
		if rel == ig || strings.HasSuffix(ig, "/") && (strings.HasPrefix(rel, ig) || rel+"/" == ig) {
			return true
		}
	}
	return false
}

// runGit runs git in dir and returns its trimmed stdout.
func runGit(ctx context.Context, dir string, args ...string) (string, error) {
	out, err := runGitRaw(ctx, dir, args...)
	return strings.TrimSpace(string(out)), err
}

func runGitRaw(ctx context.Context, dir string, args ...string) ([]byte, error) {
	// C locale for parseable messages; no optional index lock, so a concurrent git is undisturbed.
	res, err := tool.Run(ctx, tool.Cmd{Path: "git", Package: "git", Args: args, Dir: dir, Env: []string{"LC_ALL=C", "GIT_OPTIONAL_LOCKS=0"}, MaxStdout: 64 << 20})
	var te *tool.Error
	if errors.As(err, &te) {
		msg := te.Stderr
		if msg == "" {
			msg = te.Err.Error()
		}
		return nil, fmt.Errorf("git %s: %s", strings.Join(args, " "), firstLine(msg))
	}
	if err != nil {
		return nil, err
	}
	return res.Stdout, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// UntrackedWarning is the prepare-release warning for untracked files, "" when there are none.
func UntrackedWarning(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	return fmt.Sprintf("untracked files are not part of the release's source (%s): commit or .gitignore them if the build uses them",
		listSome(paths, maxUntrackedListed))
}

// listSome joins the first max paths with ", " and says how many more there are.
func listSome(paths []string, max int) string {
	listed := paths
	if len(listed) > max {
		listed = listed[:max]
	}
	s := strings.Join(listed, ", ")
	if n := len(paths) - len(listed); n > 0 {
		s += fmt.Sprintf(" and %d more", n)
	}
	return s
}
