package release

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/local"
	"github.com/otabake/otabake/internal/project"
)

const testVersion = "build-20260101000000-abc1234"

// pipeline is a project with systems efi and pi and its local Hub, prepared for testVersion.
type pipeline struct {
	t     *testing.T
	ctx   context.Context
	store *local.Store
	cfg   *project.Config
	id    *Identity
}

func newPipeline(t *testing.T, systems ...string) *pipeline {
	t.Helper()
	dir := t.TempDir()
	store, err := local.Open(filepath.Join(dir, ".otabake", "hub"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	if _, _, err := store.Init(ctx, "demo", "os"); err != nil {
		t.Fatal(err)
	}
	cfg := &project.Config{Dir: dir, Hub: project.Hub{Repository: "demo", Package: "os", DefaultTag: "stable"}}
	for _, s := range systems {
		cfg.Systems = append(cfg.Systems, &project.System{Name: s})
	}
	p := &pipeline{t: t, ctx: ctx, store: store, cfg: cfg,
		id: &Identity{Version: testVersion, BuildTag: testVersion, FloatingTag: "latest-build-main"}}
	if _, err := Prepare(ctx, store, cfg, p.id); err != nil {
		t.Fatal(err)
	}
	return p
}

// build writes build/<system>/ as build-release leaves it, with a real bundle and hash file.
func (p *pipeline) build(system string) {
	p.t.Helper()
	dir := BuildDir(p.cfg.Dir, system)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	img := make([]byte, 64<<10)
	rand.Read(img)
	bpath, hash := makeBundle(p.t, p.t.TempDir())
	files := map[string][]byte{
		"system.img.xz":          img,
		"sbom.spdx.json":         []byte(`{"spdxVersion":"SPDX-2.3","name":"` + system + `"}`),
		"system-build-info.json": []byte(fmt.Sprintf(`{"release":{"version":%q}}`, testVersion)),
		"system.rugixb-hash":     []byte(hash + "\n"),
	}
	b, err := os.ReadFile(bpath)
	if err != nil {
		p.t.Fatal(err)
	}
	files["system.rugixb"] = b
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
}

func (p *pipeline) upload(h hub.Hub, systems ...string) error {
	_, err := Upload(p.ctx, h, p.cfg, p.id, UploadOptions{Systems: systems})
	return err
}

// racingResolve is the local Hub with the first n resolves held until all n have happened, so
// that n prepares all find no version and all try to create it.
type racingResolve struct {
	*local.Store
	mu      sync.Mutex
	pending int
	gate    chan struct{}
}

func (r *racingResolve) ResolveVersion(ctx context.Context, p hub.VersionPath) (hub.VersionRef, bool, error) {
	ref, ok, err := r.Store.ResolveVersion(ctx, p)
	r.mu.Lock()
	held := r.pending > 0
	if held {
		r.pending--
		if r.pending == 0 {
			close(r.gate)
		}
	}
	r.mu.Unlock()
	if held {
		<-r.gate
	}
	return ref, ok, err
}

func TestConcurrentPrepareCreatesOnce(t *testing.T) {
	p := newPipeline(t)
	// A fresh BUILD_TAG that no run has created yet.
	const n = 6
	h := &racingResolve{Store: p.store, pending: n, gate: make(chan struct{})}
	var wg sync.WaitGroup
	results := make([]*PrepareResult, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := &Identity{Version: "build-20260102000000-abc1234", BuildTag: "build-20260102000000-abc1234", FloatingTag: "latest-build-main"}
			cfg := *p.cfg
			cfg.Dir = t.TempDir() // each run writes its own .release-env
			results[i], errs[i] = Prepare(p.ctx, h, &cfg, id)
		}()
	}
	wg.Wait()
	created, ids := 0, map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("prepare %d: %v", i, errs[i])
		}
		if results[i].Created {
			created++
		}
		ids[results[i].VersionID] = true
	}
	if created != 1 || len(ids) != 1 {
		t.Fatalf("%d of %d concurrent prepares said created, %d version IDs; want exactly 1 and 1", created, n, len(ids))
	}
	pkg, _, _ := p.store.ResolvePackage(p.ctx, "demo", "os")
	vs, err := p.store.QueryVersions(p.ctx, pkg.PackageID)
	if err != nil || len(vs) != 2 { // testVersion from newPipeline and this one
		t.Fatalf("%d versions in the package (%v), want 2", len(vs), err)
	}
}
