package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/project"
)

// Identity is the identity of one release, pinned by prepare-release and shared by every later
// step through .release-env.
type Identity struct {
	// Version is baked into images and bundles; it equals BuildTag so that a device's version
	// resolves back to its Hub version through the tag (nexigon-api.md §5).
	Version string `json:"version"`
	// BuildTag is the locked tag of the Hub version, build-<UTC %Y%m%d%H%M%S>-<short sha>.
	BuildTag string `json:"buildTag"`
	// FloatingTag is latest-build-<branch>, moved to each new build of the branch.
	FloatingTag string `json:"floatingTag"`
	// VersionID is the Hub's ID of the version (pkg_v_…), as the reference prepare-release.sh
	// writes it to VERSION_ID. NewIdentity leaves it empty; Prepare fills it in once the
	// version is resolved or created.
	VersionID string `json:"versionId,omitempty"`
	// Commit and Branch describe the git source; empty when the tags were pinned outside git.
	Commit string `json:"commit,omitempty"`
	Branch string `json:"branch,omitempty"`
	// Time is the release's time: the {time} of the tags and, pinned in .release-env as
	// RELEASE_EPOCH, the time every build of the release writes (see BuildTimeOf). Zero when
	// read from a .release-env without RELEASE_EPOCH.
	Time time.Time `json:"time"`
	// TimeFrom says where Time came from ("RELEASE_EPOCH in .release-env", "environment
	// SOURCE_DATE_EPOCH", "prepare-release"), for the build summary.
	TimeFrom string `json:"-"`
	// Dirty is true when the work tree had uncommitted changes and AllowDirty accepted them.
	Dirty bool `json:"dirty,omitempty"`
}

// IdentityOptions tune NewIdentity.
type IdentityOptions struct {
	// AllowDirty accepts uncommitted changes, which make the version not name its source.
	AllowDirty bool
	// Now returns the release time when SOURCE_DATE_EPOCH is unset; nil means time.Now.
	Now func() time.Time
	// Env is the environment for CI branch variables (GITHUB_REF_NAME, CI_COMMIT_REF_NAME) in
	// os.Environ form; nil means os.Environ(). The project's .env is consulted after it.
	Env []string
}

// maxDirtyListed bounds how many changed paths a dirty-tree error lists.
const maxDirtyListed = 5

// NewIdentity computes the release identity of the project in dir: the release time
// (SOURCE_DATE_EPOCH or now, UTC, see releaseTime), the short commit and branch from git, and the tags from the
// configured patterns, unless BUILD_TAG/FLOATING_TAG pin them. On a detached HEAD the branch
// comes from GITHUB_REF_NAME or CI_COMMIT_REF_NAME. A dirty work tree is refused unless
// opts.AllowDirty. Git is not needed when both tags are pinned.
func NewIdentity(ctx context.Context, dir string, cfg *project.Config, opts IdentityOptions) (*Identity, error) {
	id := &Identity{BuildTag: cfg.Release.BuildTag, FloatingTag: cfg.Release.FloatingTag}
	id.Time, id.TimeFrom = releaseTime(cfg, opts.Now)

	// uses reports whether a tag still to be generated needs a placeholder's value.
	uses := func(placeholder string) bool {
		return id.BuildTag == "" && strings.Contains(cfg.Release.BuildTagPattern, placeholder) ||
			id.FloatingTag == "" && strings.Contains(cfg.Release.FloatingTagPattern, placeholder)
	}
	needBranch, needGit := uses("{branch}"), uses("{commit}")

	st, err := readGit(ctx, dir)
	switch {
	case errors.Is(err, errNotGitRepo):
		if needGit {
			return nil, fmt.Errorf("%s is not a git repository: set BUILD_TAG or run inside a git checkout", dir)
		}
	case err != nil:
		if needGit {
			return nil, fmt.Errorf("release identity: %w", err)
		}
	default:
		if len(st.Changes) > 0 {
			if !opts.AllowDirty {
				return nil, dirtyError(st.Changes)
			}
			id.Dirty = true
		}
		id.Commit, id.Branch = st.Commit, st.Branch
	}

	if id.Branch == "" && needBranch {
		env := envLookup(opts.Env, cfg)
		for _, name := range []string{"GITHUB_REF_NAME", "CI_COMMIT_REF_NAME"} {
			if v, ok := env(name); ok && v != "" {
				id.Branch = v
				break
			}
		}
		if id.Branch == "" {
			return nil, errors.New("cannot tell the branch for the floating tag (no branch checked out, and neither GITHUB_REF_NAME nor CI_COMMIT_REF_NAME is set): set FLOATING_TAG")
		}
	}

	values := map[string]string{
		"time":   id.Time.Format("20060102150405"),
		"commit": id.Commit,
		"branch": strings.ReplaceAll(id.Branch, "/", "-"),
	}
	if id.BuildTag == "" {
		if id.BuildTag, err = expandTag(cfg.Release.BuildTagPattern, values, "BUILD_TAG"); err != nil {
			return nil, err
		}
	}
	if id.FloatingTag == "" {
		if id.FloatingTag, err = expandTag(cfg.Release.FloatingTagPattern, values, "FLOATING_TAG"); err != nil {
			return nil, err
		}
	}
	id.Version = id.BuildTag
	return id, nil
}

// expandTag expands a tag pattern and validates the result as a Hub tag.
func expandTag(pattern string, values map[string]string, envName string) (string, error) {
	tag, err := project.ExpandPattern(pattern, values)
	if err != nil {
		return "", fmt.Errorf("%s: %w", strings.ToLower(envName), err)
	}
	if err := validTag(tag); err != nil {
		return "", fmt.Errorf("%s from pattern %q: %v: set %s", strings.ToLower(envName), pattern, err, envName)
	}
	return tag, nil
}

// validTag checks a Hub tag name and returns the Hub's message without the ActionError kind.
func validTag(tag string) error {
	if err := hub.ValidName("tag", tag, 128); err != nil {
		var ae *hub.ActionError
		if errors.As(err, &ae) {
			return errors.New(ae.Message)
		}
		return err
	}
	return nil
}

// dirtyError names up to maxDirtyListed changed paths and the way out.
func dirtyError(changes []string) error {
	return fmt.Errorf("the work tree has uncommitted changes (%s): the version must name its source, so commit them or pass --allow-dirty",
		listSome(changes, maxDirtyListed))
}

// envLookup looks a name up in env (os.Environ form, nil = the process environment), then in
// the project's .env.
func envLookup(env []string, cfg *project.Config) func(string) (string, bool) {
	if env == nil {
		env = os.Environ()
	}
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(name string) (string, bool) {
		if v := m[name]; v != "" {
			return v, true
		}
		return cfg.LookupEnv(name)
	}
}
