package release

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/bake"
	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/project"
	"github.com/otabake/otabake/internal/testkit"
)

// raucQuickstart is the quickstart's efi system as a RAUC system.
const raucQuickstart = `
[systems.quickstart-rauc]
target = "efi-grub"
architecture = "amd64"
rootfs = "rootfs"
boot = "bootfiles-efi"
engine = "rauc"
rauc = { compatible = "otabake-quickstart" }
signing = { key = "keys/dev-signer.key", cert = "keys/dev-signer.crt", roots = ["keys/dev-ca.crt"] }
sizes = { boot = "32M" }
grub = { efi_binary = "rootfs/usr/lib/otabake-demo/BOOTX64.EFI" }
`

// TestNativeRAUCSystem builds the quickstart as a RAUC system and checks system.raucb with
// Debian's real RAUC: `rauc info --keyring` accepts it with the project's CA and shows the
// compatible, version and both slot images; `rauc extract` returns the boot-a and system-a
// partitions of system.img byte for byte. The build writes no Rugix bundle, the rootfs tells
// the agent to use rauc, and upload-release publishes <system>.raucb with its metadata.
func TestNativeRAUCSystem(t *testing.T) {
	tools := testkit.NeedTools(t, "the native RAUC system was not checked with the real RAUC",
		testkit.Tool{Name: "rauc", Package: "rauc"}, testkit.Tool{Name: "mksquashfs", Package: "squashfs-tools"},
		testkit.Tool{Name: "unsquashfs", Package: "squashfs-tools"},
		testkit.Tool{Name: "mkfs.ext4", Package: "e2fsprogs"}, testkit.Tool{Name: "debugfs", Package: "e2fsprogs"},
		testkit.Tool{Name: "sfdisk", Package: "fdisk"})
	raucPath := tools[0]
	const sys = "quickstart-rauc"
	dir := filepath.Join(t.TempDir(), "project")
	copyTree(t, "../../examples/quickstart", dir)
	appendTOML(t, dir, raucQuickstart, false)
	cfg, err := project.Load(dir, project.LoadOptions{Env: []string{"SOURCE_DATE_EPOCH=1767225600"}})
	if err != nil {
		t.Fatal(err)
	}
	id := &Identity{Version: "build-20260101000000-abc1234", BuildTag: "build-20260101000000-abc1234"}
	res, err := Build(context.Background(), cfg, id, []string{sys}, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stages %v", res[0].Stages)
	d := SystemDirOf(dir, sys)
	for _, f := range []string{d.Bundle(), d.BundleHash()} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("a RAUC system's build wrote %s", filepath.Base(f))
		}
	}

	rauc := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(raucPath, args...).CombinedOutput()
		t.Logf("$ rauc %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("rauc %s: %v", args[0], err)
		}
		return string(out)
	}
	ca := filepath.Join(dir, "keys/dev-ca.crt")
	info := rauc("info", "--keyring", ca, "--output-format=json", d.RaucBundle())
	var manifest struct {
		Compatible string `json:"compatible"`
		Version    string `json:"version"`
		Build      string `json:"build"`
		Images     []map[string]struct {
			Filename string `json:"filename"`
		} `json:"images"`
	}
	if err := json.Unmarshal([]byte(info[strings.Index(info, "{"):]), &manifest); err != nil {
		t.Fatalf("rauc info JSON: %v", err)
	}
	if manifest.Compatible != "otabake-quickstart" || manifest.Version != id.Version || manifest.Build != sys+"@"+id.Version {
		t.Errorf("manifest: %+v", manifest)
	}
	var images []string
	for _, im := range manifest.Images {
		for class, v := range im {
			images = append(images, class+"="+v.Filename)
		}
	}
	if strings.Join(images, ",") != "rootfs=rootfs.ext4,boot=boot.ext4" {
		t.Errorf("images %v, want rootfs=rootfs.ext4, boot=boot.ext4", images)
	}

	disk := readDiskTable(t, d.Image())
	extracted := filepath.Join(t.TempDir(), "extracted")
	rauc("extract", "--keyring", ca, d.RaucBundle(), extracted)
	for file, part := range map[string]string{"boot.ext4": "2", "rootfs.ext4": "4"} {
		got, err := os.ReadFile(filepath.Join(extracted, file))
		if err != nil {
			t.Fatal(err)
		}
		if want := disk.bytes(t, part); !bytes.Equal(got, want) {
			t.Errorf("%s (%d bytes) differs from partition %s of system.img (%d bytes)", file, len(got), part, len(want))
		}
	}

	// The rootfs: the agent drives rauc, RAUC's keyring holds the CA, no Rugix Ctrl layout.
	rootfs := filepath.Join(extracted, "rootfs.ext4")
	if got := debugfsCat(t, rootfs, "/"+bake.AgentSettings); got != "engine = \"rauc\"\n" {
		t.Errorf("agent.toml = %q", got)
	}
	conf := debugfsCat(t, rootfs, "/"+bake.RaucSystemConf)
	for _, want := range []string{"compatible=otabake-quickstart\n", "bootloader=grub\n", "[slot.rootfs.1]\ndevice=/dev/disk/by-partlabel/system-b\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("%s lacks %q:\n%s", bake.RaucSystemConf, want, conf)
		}
	}
	// The disk: the RAUC layout (system-b and data exist, named as system.conf names them).
	if names := disk.names(); names != "config,boot-a,boot-b,system-a,system-b,data" {
		t.Errorf("partitions %s", names)
	}
	for _, f := range []string{bake.SystemTOML, bake.CtrlConfig, bake.RootPath(0)} {
		if got := debugfsCat(t, rootfs, "/"+f); got != "" {
			t.Errorf("a RAUC system has %s:\n%s", f, got)
		}
	}
	caPEM := testkit.ReadFile(t, ca)
	if got := debugfsCat(t, rootfs, "/"+bake.RaucKeyring); got == "" || got != caPEM[strings.Index(caPEM, "-----BEGIN"):] {
		t.Errorf("%s = %q, want the project's CA", bake.RaucKeyring, got)
	} else {
		// The device's own keyring accepts the bundle.
		keyring := filepath.Join(t.TempDir(), "keyring.pem")
		testkit.WriteFile(t, keyring, got)
		rauc("info", "--keyring", keyring, d.RaucBundle())
	}

	name, err := assetNameFor(cfg, sys, d.Dir)
	if err != nil || name.Name != sys {
		t.Fatalf("asset name %+v, %v; want the system name", name, err)
	}
	arts, err := CollectArtifacts(d.Dir, sys, name.Name, id.Version)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range arts {
		if strings.HasSuffix(a.Filename, ".rugixb") {
			t.Errorf("upload-release would publish %s", a.Filename)
		}
		if a.Filename == sys+".raucb" {
			found = true
			m := hub.ParseBundleAssetMetadata(a.Metadata)
			if m.Version != id.Version || m.Relations == nil || len(m.Relations.SBOM) != 1 {
				t.Errorf("%s metadata %s", a.Filename, a.Metadata)
			}
		}
	}
	if !found {
		t.Errorf("upload-release would not publish %s.raucb", sys)
	}
}

// diskTable is a disk image's partition table as sfdisk --json reports it.
type diskTable struct {
	img        string
	Label      string `json:"label"`
	Partitions []struct {
		Node, Name  string
		Start, Size int64
	} `json:"partitions"`
}

// readDiskTable runs sfdisk --json on a disk image once.
func readDiskTable(t *testing.T, img string) diskTable {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json %s: %v", img, err)
	}
	var doc struct {
		PartitionTable diskTable `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	doc.PartitionTable.img = img
	return doc.PartitionTable
}

// bytes reads partition n of the disk image.
func (d diskTable) bytes(t *testing.T, n string) []byte {
	t.Helper()
	for _, p := range d.Partitions {
		if strings.HasSuffix(p.Node, "img"+n) {
			f, err := os.Open(d.img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, p.Size*512)
			if _, err := f.ReadAt(b, p.Start*512); err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("%s has no partition %s", d.img, n)
	return nil
}

// names lists the GPT partition names, comma-separated.
func (d diskTable) names() string {
	var names []string
	for _, p := range d.Partitions {
		names = append(names, p.Name)
	}
	return strings.Join(names, ",")
}

// debugfsCat returns a file of an ext4 image, "" when it does not exist.
func debugfsCat(t *testing.T, img, path string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "cat "+path, img).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s: %v", path, err)
	}
	return string(out)
}
