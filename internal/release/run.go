package release

import (
	"context"

	"github.com/otabake/otabake/internal/hub/local"
	"github.com/otabake/otabake/internal/project"
)

// RunOptions tune Run.
type RunOptions struct {
	// Systems are the systems to build and upload; empty means every configured system.
	Systems []string
	// AllowDirty allows uncommitted changes in the work tree (IdentityOptions.AllowDirty).
	AllowDirty bool
	// Promote, when set, is the floating tag moved to the new version at the end.
	Promote string
	// Hub, Build and Upload tune the steps as they tune OpenHub, Build and Upload.
	Hub    HubOptions
	Build  BuildOptions
	Upload UploadOptions
	// Prepared is called when the version is pinned, before the first build; hubDesc names
	// the Hub (OpenHub's description).
	Prepared func(res *PrepareResult, hubDesc string)
	// Built is called when every system is built, before the upload starts.
	Built func([]*BuildResult)
}

// RunResult is what each step of Run did.
type RunResult struct {
	Identity *Identity
	// Systems are the systems built and uploaded.
	Systems []string
	Prepare *PrepareResult
	Build   []*BuildResult
	Upload  *UploadReport
	// Promote is nil unless RunOptions.Promote was set.
	Promote *PromoteResult
	// LocalHub is the embedded local Hub's content for the package after the release, nil
	// when the project publishes to a remote Hub.
	LocalHub *LocalHubTree
}

// LocalHubTree is the content of the embedded local Hub under Dir.
type LocalHubTree struct {
	Dir  string
	Tree []local.TreeRepository
}

// Run is the whole pipeline, the steps prepare-release, build-release, upload-release and
// (with RunOptions.Promote) promote-release run in one go: it pins a new identity, opens the
// project's Hub (creating the configured repository and package first in the embedded local
// Hub), prepares the version, builds and uploads the systems and moves the tag. In CI the steps
// run separately so that builds can run in parallel jobs.
func Run(ctx context.Context, cfg *project.Config, opts RunOptions) (*RunResult, error) {
	if err := RequirePackage(cfg); err != nil {
		return nil, err
	}
	res := &RunResult{Systems: opts.Systems}
	if len(res.Systems) == 0 {
		for _, s := range cfg.Systems {
			res.Systems = append(res.Systems, s.Name)
		}
	}
	id, err := NewIdentity(ctx, cfg.Dir, cfg, IdentityOptions{AllowDirty: opts.AllowDirty})
	if err != nil {
		return nil, err
	}
	res.Identity = id
	h, closer, desc, err := OpenHub(ctx, cfg, opts.Hub)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	// The embedded local Hub is the project's own: Run creates what it publishes into.
	store, _ := h.(*local.Store)
	if store != nil {
		if _, _, err := store.Init(ctx, cfg.Hub.Repository, cfg.Hub.Package); err != nil {
			return nil, err
		}
	}
	if res.Prepare, err = Prepare(ctx, h, cfg, id); err != nil {
		return nil, err
	}
	if opts.Prepared != nil {
		opts.Prepared(res.Prepare, desc)
	}
	if res.Build, err = Build(ctx, cfg, id, res.Systems, opts.Build); err != nil {
		return nil, err
	}
	if opts.Built != nil {
		opts.Built(res.Build)
	}
	uo := opts.Upload
	uo.Systems = res.Systems
	if res.Upload, err = Upload(ctx, h, cfg, id, uo); err != nil {
		return nil, err
	}
	if opts.Promote != "" {
		if res.Promote, err = Promote(ctx, h, cfg, opts.Promote, id.BuildTag, PromoteOptions{}); err != nil {
			return nil, err
		}
	}
	if store != nil {
		tree, err := store.Tree(ctx, cfg.Hub.Repository+"/"+cfg.Hub.Package)
		if err != nil {
			return nil, err
		}
		res.LocalHub = &LocalHubTree{Dir: store.Dir(), Tree: tree}
	}
	return res, nil
}
