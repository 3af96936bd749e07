package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/nexigon"
	"github.com/otabake/otabake/internal/project"
)

// PrepareResult is what prepare-release did.
type PrepareResult struct {
	Identity    *Identity `json:"identity"`
	VersionPath string    `json:"versionPath"`
	VersionID   string    `json:"versionId"`
	// Created is true only for the run whose create made the version: false when a version
	// with the build tag already existed, or another run created it first (a lost race).
	Created bool `json:"created"`
	// OutcomeUnknown is set when the Hub's answer to the create was lost and the version was
	// found afterwards: this run or another one created it, which cannot be told apart.
	OutcomeUnknown bool   `json:"createOutcomeUnknown,omitempty"`
	EnvFile        string `json:"envFile"`
	// EnvFiles are every file the identity was written to: .release-env and .release.env.
	EnvFiles []string `json:"envFiles"`
	// Untracked lists untracked files of the work tree: they do not make it dirty (as for
	// `git describe --dirty`) but are not part of the release's source either.
	Untracked []string `json:"untracked,omitempty"`
}

// Prepare pins a release in the Hub: it resolves <repo>/<pkg>/<BUILD_TAG> and reuses that
// version, or creates it with the locked build tag, the floating tag and
// {"imageVersion": VERSION}. Then it writes .release-env and .release.env. Re-running with the same BUILD_TAG is
// a no-op apart from rewriting .release-env with the same content; of concurrent runs, only the
// one whose create succeeded reports Created.
func Prepare(ctx context.Context, h hub.Hub, cfg *project.Config, id *Identity) (*PrepareResult, error) {
	if err := RequirePackage(cfg); err != nil {
		return nil, err
	}
	path := hub.VersionPath{Repository: cfg.Hub.Repository, Package: cfg.Hub.Package, Tag: id.BuildTag}
	res := &PrepareResult{Identity: id, VersionPath: path.String(), EnvFile: filepath.Join(cfg.Dir, EnvFileName)}

	ref, found, err := h.ResolveVersion(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", path, err)
	}
	if found {
		if err := checkImageVersion(ctx, h, ref.VersionID, id.Version); err != nil {
			return nil, err
		}
		res.VersionID = ref.VersionID
	} else {
		pkg, ok, err := h.ResolvePackage(ctx, cfg.Hub.Repository, cfg.Hub.Package)
		if err != nil {
			return nil, fmt.Errorf("resolve package %s/%s: %w", cfg.Hub.Repository, cfg.Hub.Package, err)
		}
		if !ok {
			return nil, fmt.Errorf("package %s/%s not found in the Hub (or the token may not see it): create it first%s",
				cfg.Hub.Repository, cfg.Hub.Package, initHint(cfg))
		}
		meta, _ := json.Marshal(hub.VersionMetadata{ImageVersion: id.Version})
		req := hub.CreateVersionRequest{
			PackageID: pkg.PackageID,
			Tags: []hub.TagItem{
				{Tag: id.BuildTag, Locked: true, Reassign: false},
				{Tag: id.FloatingTag, Locked: false, Reassign: true},
			},
			Metadata: meta,
		}
		vid, err := h.CreateVersion(ctx, req)
		if err == nil {
			res.VersionID, res.Created = vid, true
		} else {
			// The locked build tag makes the create atomic: of two runs racing for one
			// BUILD_TAG, the Hub refuses the second create (the tag is locked to the first
			// version). A create whose response was lost may also have happened. Either way
			// the version now resolves: reuse it, as if it had been found above.
			ref, found, rerr := h.ResolveVersion(ctx, path)
			if rerr != nil || !found {
				return nil, fmt.Errorf("create version %s: %w", path, err)
			}
			if err := checkImageVersion(ctx, h, ref.VersionID, id.Version); err != nil {
				return nil, err
			}
			res.VersionID = ref.VersionID
			res.OutcomeUnknown = errors.Is(err, nexigon.ErrOutcomeUnknown)
		}
	}
	id.VersionID = res.VersionID
	files, err := WriteEnvFiles(cfg.Dir, id)
	if err != nil {
		return nil, err
	}
	res.EnvFiles = files
	res.Untracked = UntrackedFiles(ctx, cfg.Dir)
	return res, nil
}

// checkImageVersion refuses to reuse a version whose imageVersion names another release.
func checkImageVersion(ctx context.Context, h hub.Hub, versionID, want string) error {
	d, err := h.GetVersionDetails(ctx, versionID)
	if err != nil {
		return fmt.Errorf("version %s: %w", versionID, err)
	}
	if got := imageVersion(d); got != "" && got != want {
		return fmt.Errorf("version %s already has imageVersion %q, not %q: use another BUILD_TAG", versionID, got, want)
	}
	return nil
}

// imageVersion returns the version metadata's imageVersion, or "".
func imageVersion(d *hub.VersionDetails) string {
	return hub.ParseVersionMetadata(d.Metadata).ImageVersion
}

func initHint(cfg *project.Config) string {
	if cfg.Hub.URL == "" {
		return fmt.Sprintf(" with 'otabake hub init --repository %s --package %s'", cfg.Hub.Repository, cfg.Hub.Package)
	}
	return " in the Hub's web interface"
}
