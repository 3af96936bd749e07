package release

import (
	"context"
	"fmt"
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
}

// Promote points the floating tag at the version named by from (a tag, such as the build tag
// or latest-build-main, or a pkg_v_ version ID). The Hub moves the tag atomically; a locked
// tag is refused before anything is sent, and so is a version without assets, because devices
// following the tag would find nothing to install.
func Promote(ctx context.Context, h hub.Hub, cfg *project.Config, tag, from string) (*PromoteResult, error) {
	if err := RequirePackage(cfg); err != nil {
		return nil, err
	}
	if err := hub.ValidName("tag", tag, 128); err != nil {
		return nil, err
	}
	if strings.HasPrefix(tag, "build-") {
		return nil, fmt.Errorf("tag %q looks like a build tag: build tags are locked and name one version; promote to a floating tag such as stable", tag)
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
	res := &PromoteResult{Tag: tag, From: from, VersionID: ref.VersionID}
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
