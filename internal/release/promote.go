package release

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/project"
)

// PromoteResult is what promote-release did.
type PromoteResult struct {
	Tag       string `json:"tag"`
	From      string `json:"from"`
	VersionID string `json:"versionId"`
	// PreviousVersionID is the version the tag pointed at before, if any.
	PreviousVersionID string `json:"previousVersionId,omitempty"`
	Moved             bool   `json:"moved"`
	// Systems are the systems checked complete; Partial is set when only some systems of the
	// version were required (PromoteOptions.Partial), and Excluded lists the others, whose
	// devices following the tag find no bundle for them.
	Systems  []string `json:"systems"`
	Partial  bool     `json:"partial,omitempty"`
	Excluded []string `json:"excluded,omitempty"`
}

// PromoteOptions tune Promote.
type PromoteOptions struct {
	// Partial promotes a version although systems other than these lack their bundles: only
	// the named systems must be complete. Empty requires every system of the version.
	Partial []string
}

// IncompleteError is the refusal of a version whose systems are not all complete.
type IncompleteError struct {
	Version string
	*Completeness
}

func (e *IncompleteError) Error() string {
	hint := "finish 'otabake upload-release' for the missing systems"
	var done []string
	for _, s := range e.Checked {
		if _, bad := e.Problems[s]; !bad && s != otherFiles {
			done = append(done, s)
		}
	}
	if len(done) > 0 {
		hint += ", or promote only the complete ones with --partial " + strings.Join(done, ",")
	}
	return fmt.Sprintf("version %s is incomplete: %s: %s", e.Version, e.Completeness, hint)
}

// Promote points the floating tag at the version named by from (a tag, such as the build tag
// or latest-build-main, or a pkg_v_ version ID). The Hub moves the tag atomically. Refused
// before anything is sent: a locked tag, a version without assets, and a version with an
// incomplete system (CheckComplete: every system of the project and of the version's own
// record needs its bundle, bundle hash and recorded files, all Available), because devices
// following the tag would find nothing to install. opts.Partial narrows the systems required.
func Promote(ctx context.Context, h hub.Hub, cfg *project.Config, tag, from string, opts PromoteOptions) (*PromoteResult, error) {
	if err := RequirePackage(cfg); err != nil {
		return nil, err
	}
	if err := hub.ValidName("tag", tag, 128); err != nil {
		return nil, err
	}
	if strings.HasPrefix(tag, "build-") {
		return nil, fmt.Errorf("tag %q looks like a build tag: build tags are locked and name one version; promote to a floating tag such as stable", tag)
	}
	for _, s := range opts.Partial {
		if err := hub.ValidName("system", s, 128); err != nil {
			return nil, fmt.Errorf("--partial: %w", err)
		}
	}
	src := hub.VersionPath{Repository: cfg.Hub.Repository, Package: cfg.Hub.Package, Tag: from}
	ref, ok, err := h.ResolveVersion(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", src, err)
	}
	if !ok {
		return nil, fmt.Errorf("version %s not found", src)
	}
	d, err := h.GetVersionDetails(ctx, ref.VersionID)
	if err != nil {
		return nil, fmt.Errorf("version %s: %w", src, err)
	}
	if len(d.Assets) == 0 {
		return nil, fmt.Errorf("version %s has no assets: run 'otabake upload-release' before promoting it", src)
	}
	var projectSystems []string
	for _, s := range cfg.Systems {
		projectSystems = append(projectSystems, s.Name)
	}
	comp := CheckComplete(d, projectSystems, opts.Partial)
	if len(comp.Systems) == 0 {
		return nil, fmt.Errorf("version %s has no system bundle (no <system>.rugixb or <system>.raucb attached): run 'otabake upload-release' before promoting it", src)
	}
	if !comp.Complete() {
		return nil, &IncompleteError{Version: src.String(), Completeness: comp}
	}
	res := &PromoteResult{Tag: tag, From: from, VersionID: ref.VersionID, Systems: comp.Checked, Partial: len(opts.Partial) > 0}
	if res.Partial {
		for _, s := range comp.Systems {
			if !slices.Contains(comp.Checked, s) {
				res.Excluded = append(res.Excluded, s)
			}
		}
	}
	dst := hub.VersionPath{Repository: cfg.Hub.Repository, Package: cfg.Hub.Package, Tag: tag}
	cur, ok, err := h.ResolveVersion(ctx, dst)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", dst, err)
	}
	if ok {
		res.PreviousVersionID = cur.VersionID
		if cur.VersionID == ref.VersionID {
			return res, nil
		}
		cd, err := h.GetVersionDetails(ctx, cur.VersionID)
		if err != nil {
			return nil, fmt.Errorf("version %s: %w", dst, err)
		}
		for _, t := range cd.Tags {
			if t.Tag == tag && t.Locked {
				return nil, fmt.Errorf("tag %q is locked to version %s and cannot move", tag, cur.VersionID)
			}
		}
	}
	if err := h.TagVersion(ctx, ref.VersionID, []hub.TagItem{{Tag: tag, Locked: false, Reassign: true}}); err != nil {
		return nil, fmt.Errorf("tag %s as %s: %w", src, tag, err)
	}
	res.Moved = true
	return res, nil
}
