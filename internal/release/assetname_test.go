package release

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/agent"
	"github.com/otabake/otabake/internal/project"
)

// deployYocto lays out a deploy directory as BitBake with meta-nexigon leaves it
// (nexigon-deploy-release-info.bbclass copies os-release next to the images) and returns it.
func deployYocto(t *testing.T, projectDir, machine, osRelease string) string {
	t.Helper()
	deploy := filepath.Join(projectDir, "build/tmp/deploy/images", machine)
	if err := os.MkdirAll(deploy, 0o755); err != nil {
		t.Fatal(err)
	}
	bpath, _ := makeBundle(t, t.TempDir())
	data, err := os.ReadFile(bpath)
	if err != nil {
		t.Fatal(err)
	}
	stamp := "core-image-minimal-" + machine + ".rootfs-20260101000000"
	for name, content := range map[string][]byte{
		stamp + ".wic.xz": []byte("image-bytes"),
		stamp + ".rugixb": data,
		"os-release":      []byte(osRelease),
	} {
		if err := os.WriteFile(filepath.Join(deploy, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, ext := range []string{".wic.xz", ".rugixb"} {
		if err := os.Symlink(stamp+ext, filepath.Join(deploy, "core-image-minimal-"+machine+".rootfs"+ext)); err != nil {
			t.Fatal(err)
		}
	}
	return deploy
}

func TestYoctoAssetsNamedAfterImageID(t *testing.T) {
	p := newPipeline(t)
	p.cfg.Systems = []*project.System{{Name: "qemu", Backend: project.BackendYocto, Yocto: project.Yocto{Machine: "qemux86-64"}}}
	deploy := deployYocto(t, p.cfg.Dir, "qemux86-64", "ID=poky\nIMAGE_ID=core-image-otabake\nIMAGE_VERSION=\""+testVersion+"\"\n")
	if _, err := Build(p.ctx, p.cfg, p.id, []string{"qemu"}, BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := Upload(p.ctx, p.store, p.cfg, p.id, UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Names["qemu"]; n.Name != "core-image-otabake" || n.Source != "os-release IMAGE_ID" {
		t.Errorf("report names %+v, want core-image-otabake from os-release IMAGE_ID", rep.Names)
	}
	var got []string
	for _, a := range rep.Artifacts {
		got = append(got, a.Filename)
	}
	if strings.Join(got, " ") != "core-image-otabake.img.xz core-image-otabake.rugixb core-image-otabake.rugixb-hash" {
		t.Errorf("uploaded %v", got)
	}

	// A device of this image finds its bundle: the agent names itself from os-release.
	osr, err := os.ReadFile(filepath.Join(deploy, "os-release"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.store.GetVersionDetails(p.ctx, rep.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	want := agent.ParseOSRelease(osr)["IMAGE_ID"] + ".rugixb"
	a, ok := d.Asset(want)
	if !ok {
		t.Fatalf("the version has no %s, which a device of this image looks for", want)
	}
	if err := checkBundleHashMeta(a.Metadata); err != nil {
		t.Errorf("%s: %v", want, err)
	}

	// The version is complete for system qemu, whose files carry the image's name.
	if _, err := Promote(p.ctx, p.store, p.cfg, "stable", testVersion, PromoteOptions{}); err != nil {
		t.Errorf("promote: %v", err)
	}
}

func TestYoctoAssetNameConflicts(t *testing.T) {
	tests := []struct {
		name, osRelease, buildInfo, imageID string
		want                                []string // error parts; none means no error and this name
	}{
		{name: "image_id agrees", osRelease: "IMAGE_ID=core-image-otabake\n", imageID: "core-image-otabake", want: nil},
		{name: "image_id contradicted", osRelease: "IMAGE_ID=core-image-minimal\n", imageID: "core-image-otabake",
			want: []string{`image_id is "core-image-otabake"`, `reports "core-image-minimal"`}},
		{name: "build info and IMAGE_ID differ", osRelease: "IMAGE_ID=core-image-minimal\n", buildInfo: `{"name":"gateway"}`,
			want: []string{`"gateway"`, "IMAGE_ID=core-image-minimal"}},
		{name: "hostile IMAGE_ID", osRelease: "IMAGE_ID=../etc\n", want: []string{"not usable as an asset name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "os-release"), []byte(tt.osRelease), 0o644)
			if tt.buildInfo != "" {
				os.WriteFile(filepath.Join(dir, "system-build-info.json"), []byte(tt.buildInfo), 0o644)
			}
			cfg := &project.Config{Systems: []*project.System{{Name: "qemu", Backend: project.BackendYocto, Yocto: project.Yocto{Machine: "qemux86-64", ImageID: tt.imageID}}}}
			n, err := assetNameFor(cfg, "qemu", dir)
			if tt.want == nil {
				if err != nil || n.Name != tt.imageID {
					t.Fatalf("= %+v, %v", n, err)
				}
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
		})
	}
	// No IMAGE_ID at all: the machine, as meta-nexigon's upload-release.sh falls back.
	cfg := &project.Config{Systems: []*project.System{{Name: "qemu", Backend: project.BackendYocto, Yocto: project.Yocto{Machine: "qemux86-64"}}}}
	if n, err := assetNameFor(cfg, "qemu", t.TempDir()); err != nil || n.Name != "qemux86-64" {
		t.Errorf("without os-release: %+v, %v", n, err)
	}
	// Native systems are published under their own name.
	cfg.Systems[0].Backend = project.BackendNative
	if n, err := assetNameFor(cfg, "qemu", t.TempDir()); err != nil || n.Name != "qemu" {
		t.Errorf("native: %+v, %v", n, err)
	}
}
