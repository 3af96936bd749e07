package schema_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/agent"
	"github.com/otabake/otabake/internal/bake"
	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/release"
	"github.com/otabake/otabake/internal/schema"
)

// TestBakeOutputsValidate runs the bake writer and validates what it puts into the rootfs.
func TestBakeOutputsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts bake.Options
	}{
		{"identity only", bake.Options{System: "efi-amd64", Version: "build-20260101000000-abc1234"}},
		{"with OTA defaults", bake.Options{System: "pi5", Version: "1.2.3", ReleaseID: "pi5@1.2.3", OTAPath: "repo/pkg/stable", UseBundleHash: true, Target: "rpi-tryboot"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			res, err := bake.Bake(context.Background(), root, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.ValidateJSON(schema.KindSystemBuildInfo, res.BuildInfoJSON); err != nil {
				t.Errorf("build info: %v", err)
			}
			if err := schema.ValidateFile(schema.KindSystemBuildInfo, filepath.Join(root, bake.BuildInfoPath)); err != nil {
				t.Error(err)
			}
			ota := filepath.Join(root, bake.OTADefaults)
			if tc.opts.OTAPath == "" {
				if _, err := os.Stat(ota); err == nil {
					t.Errorf("%s written without an OTA path", bake.OTADefaults)
				}
				return
			}
			if err := schema.ValidateFile(schema.KindOTADefaults, ota); err != nil {
				t.Error(err)
			}
		})
	}
	data, err := bake.MarshalBuildInfo(bake.BuildInfo{Name: "a", Release: bake.ReleaseField{ID: "a@1", Version: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.ValidateJSON(schema.KindSystemBuildInfo, data); err != nil {
		t.Error(err)
	}
}

// TestUploadMetadataValidates builds a small build/<system>/ directory with a real bundle and
// validates the asset metadata upload-release would attach.
func TestUploadMetadataValidates(t *testing.T) {
	dir := t.TempDir()
	const system, version = "efi-amd64", "build-20260101000000-abc1234"
	info, err := bake.MarshalBuildInfo(bake.BuildInfo{Name: system, Release: bake.ReleaseField{ID: system + "@" + version, Version: version}})
	if err != nil {
		t.Fatal(err)
	}
	payload := filepath.Join(t.TempDir(), "system.img")
	files := map[string]string{
		"system-build-info.json": string(info),
		"sbom.spdx.json":         `{"spdxVersion":"SPDX-2.3"}`,
		"system.img.xz":          "not really xz; only its presence matters here",
		"system.raucb":           "not really a RAUC bundle; only its presence matters here",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(payload, []byte(strings.Repeat("otabake ", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := bundle.Spec{Payloads: []bundle.Payload{{
		Slot: "system", Path: payload,
		BlockEncoding: &bundle.BlockEncoding{Chunker: "casync-16", Deduplicate: true, Compression: &bundle.Compression{}},
	}}}
	if _, err := bundle.Create(context.Background(), filepath.Join(dir, "system.rugixb"), spec, bundle.CreateOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	arts, err := release.CollectArtifacts(dir, system, system, version)
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]int{}
	for _, a := range arts {
		var k string
		switch {
		case strings.HasSuffix(a.Filename, ".rugixb"), strings.HasSuffix(a.Filename, ".raucb"):
			k = schema.KindBundleAssetMetadata
		case strings.Contains(a.Filename, ".img"):
			k = schema.KindImageAssetMetadata
		default:
			continue
		}
		if err := schema.ValidateJSON(k, a.Metadata); err != nil {
			t.Errorf("%s metadata %s: %v", a.Filename, a.Metadata, err)
		}
		checked[k]++
	}
	if checked[schema.KindBundleAssetMetadata] != 2 || checked[schema.KindImageAssetMetadata] != 1 {
		t.Fatalf("CollectArtifacts gave %d artifacts, checked %v; want two bundles and an image", len(arts), checked)
	}

	// The manifest embedded in the bundle header is rugix-bundle.toml's JSON form.
	b, err := bundle.Open(filepath.Join(dir, "system.rugixb"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Header().Manifest == nil {
		t.Fatal("bundle has no embedded manifest")
	}
	if err := schema.ValidateJSON(schema.KindRugixBundle, []byte(*b.Header().Manifest)); err != nil {
		t.Errorf("embedded manifest %s: %v", *b.Header().Manifest, err)
	}
}

// TestAgentStatusValidates validates the status documents the agent publishes in each state.
func TestAgentStatusValidates(t *testing.T) {
	defaults := agent.OTAConfig{"path": "repo/pkg/stable", "rugix": map[string]any{"useBundleHash": true}}
	cfg := agent.OTAConfig(agent.Merge(defaults, map[string]any{"path": "repo/pkg/beta", "defer": map[string]any{"file": "/run/busy"}}))
	target, lastErr := "2.0.0", "rugix-ctrl update install failed: exit status 1"
	next := time.Date(2026, 11, 22, 21, 0, 0, 0, time.UTC)
	for _, st := range []agent.Status{
		{Config: cfg, CurrentVersion: "1.0.0", State: agent.StateIdle},
		{Config: cfg, CurrentVersion: "1.0.0", State: agent.StateInstalling, TargetVersion: &target},
		{Config: cfg, CurrentVersion: "1.0.0", State: agent.StateFailed, TargetVersion: &target, FailureCount: 2, LastError: &lastErr, NextAttemptAt: &next},
		{Config: cfg, CurrentVersion: "1.0.0", State: agent.StateBlocked, TargetVersion: &target, BlockedReason: "defer file /run/busy exists"},
		{Config: cfg, CurrentVersion: "2.0.0", State: agent.StateCompleted},
		{CurrentVersion: "2.0.0", State: agent.StateRebooting, TargetVersion: &target},
		{CurrentVersion: "2.0.0", State: agent.StateCommitting, TargetVersion: &target},
		{CurrentVersion: "1.0.0", State: agent.StateRollback, TargetVersion: &target, LastError: &lastErr},
	} {
		data, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.ValidateJSON(schema.KindOTAStatus, data); err != nil {
			t.Errorf("%s: %v", data, err)
		}
	}
	if err := schema.Validate(schema.KindOTAConfig, cfg); err != nil {
		t.Error(err)
	}
}
