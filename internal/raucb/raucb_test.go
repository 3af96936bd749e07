package raucb

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/sign"
	"github.com/otabake/otabake/internal/testkit"
)

// pki is a development CA and a signer it issued, as files, and the loaded signer.
type pki struct {
	ca     string
	signer *sign.Signer
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	keys, err := sign.NewDevKeys(sign.DevKeyOptions{})
	testkit.Must(t, err)
	_, err = keys.Write(dir)
	testkit.Must(t, err)
	s, err := sign.LoadSigner(context.Background(), filepath.Join(dir, sign.DevSignerKey), filepath.Join(dir, sign.DevSignerCert), nil, "")
	testkit.Must(t, err)
	s.SigningTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return pki{ca: filepath.Join(dir, sign.DevCACert), signer: s}
}

// writeImage writes size pseudo-random bytes (seeded) to path.
func writeImage(t *testing.T, path string, size int, seed byte) {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	testkit.Must(t, os.WriteFile(path, b, 0o644))
}

// needRAUC skips loudly without the real RAUC and mksquashfs and returns rauc's path.
func needRAUC(t *testing.T) string {
	t.Helper()
	return testkit.NeedTools(t, "RAUC bundles were not checked with the real RAUC",
		testkit.Tool{Name: "rauc", Package: "rauc"},
		testkit.Tool{Name: "mksquashfs", Package: "squashfs-tools"},
		testkit.Tool{Name: "unsquashfs", Package: "squashfs-tools"})[0]
}

// rauc runs the real rauc and returns its combined output and error.
func rauc(t *testing.T, path string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(path, args...).CombinedOutput()
	t.Logf("$ rauc %s\n%s", strings.Join(args, " "), out)
	return string(out), err
}

type fixture struct {
	dir, bundle string
	pki         pki
	images      []Image
	info        *Info
}

func newBundle(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	fx := fixture{dir: dir, bundle: filepath.Join(dir, "system.raucb"), pki: newPKI(t, filepath.Join(dir, "keys"))}
	fx.images = []Image{
		{SlotClass: "rootfs", Path: filepath.Join(dir, "rootfs.ext4")},
		{SlotClass: "appfs", Path: filepath.Join(dir, "app.img"), Filename: "appfs.ext4"},
	}
	writeImage(t, fx.images[0].Path, 3<<20+123, 1)
	writeImage(t, fx.images[1].Path, 70000, 2)
	var err error
	fx.info, err = Create(context.Background(), fx.bundle, Spec{
		Compatible: `otabake test\machine`, Version: "1.2.3", Build: "20260102030405",
		Images: fx.images, Signer: fx.pki.signer,
	})
	testkit.Must(t, err)
	return fx
}

// TestRAUCAcceptsBundle: `rauc info --keyring` accepts the bundle and shows the manifest;
// `rauc extract` verifies the payload against the hash tree and returns the images byte for
// byte.
func TestRAUCAcceptsBundle(t *testing.T) {
	raucPath := needRAUC(t)
	fx := newBundle(t)
	t.Logf("bundle: %d bytes (squashfs %d, hash tree %d), verity-hash %s", fx.info.Size, fx.info.PayloadSize, fx.info.VeritySize, fx.info.VerityHash)
	t.Logf("signed manifest:\n%s", fx.info.Manifest)

	out, err := rauc(t, raucPath, "info", "--keyring", fx.pki.ca, fx.bundle)
	if err != nil {
		t.Fatalf("rauc info refused the bundle: %v", err)
	}
	for _, want := range []string{
		`Compatible: 	'otabake test\machine'`, "Version:    	'1.2.3'", "Build:      	'20260102030405'",
		"Bundle Format: 	verity", "Verity Salt: 	'" + fx.info.VeritySalt, "Verity Hash: 	'" + fx.info.VerityHash,
		"2 Images:", "[rootfs]", "Filename:  rootfs.ext4", "[appfs]", "Filename:  appfs.ext4",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rauc info does not say %q", want)
		}
	}

	dest := filepath.Join(fx.dir, "extracted")
	if _, err := rauc(t, raucPath, "extract", "--keyring", fx.pki.ca, fx.bundle, dest); err != nil {
		t.Fatalf("rauc extract refused the bundle: %v", err)
	}
	for _, im := range fx.images {
		name := im.Filename
		if name == "" {
			name = filepath.Base(im.Path)
		}
		if got, want := testkit.SHA256File(t, filepath.Join(dest, name)), testkit.SHA256File(t, im.Path); got != want {
			t.Errorf("extracted %s: sha256 %s, want %s", name, got, want)
		}
	}
	internal := testkit.ReadFile(t, filepath.Join(dest, ManifestName))
	if strings.Contains(internal, "verity-hash") || !strings.Contains(internal, "format=verity") {
		t.Errorf("the manifest in the squashfs must name the format without verity values:\n%s", internal)
	}
}

// TestRAUCRejectsTampered flips one byte in each part of the bundle. RAUC 1.8's `rauc info`
// checks only the signature of a verity bundle (rauc src/main.c info_start: check_bundle; the
// signed manifest needs no payload), so a flip in the squashfs or the hash tree is caught by
// the payload check of `rauc extract` (rauc src/bundle.c check_bundle_payload:
// r_verity_hash_verify, "bundle payload is corrupted"), as by `rauc install`, which reads the
// payload through dm-verity.
func TestRAUCRejectsTampered(t *testing.T) {
	raucPath := needRAUC(t)
	fx := newBundle(t)
	good, err := os.ReadFile(fx.bundle)
	testkit.Must(t, err)
	sigSize := int64(binary.BigEndian.Uint64(good[len(good)-8:]))
	sigStart := fx.info.Size - 8 - sigSize
	manifestAt := int64(strings.Index(string(good[sigStart:]), "[update]")) + sigStart

	for _, c := range []struct {
		name   string
		offset int64
		// infoRejects: rauc info refuses it; otherwise rauc extract must.
		infoRejects bool
		want        string
	}{
		{"squashfs", fx.info.PayloadSize / 2, false, "bundle payload is corrupted"},
		{"squashfs superblock", 10, false, "bundle payload is corrupted"},
		{"hash tree", fx.info.PayloadSize + 100, false, "bundle payload is corrupted"},
		{"signed manifest", manifestAt + 30, true, "signature"},
		{"signature value", fx.info.Size - 8 - 20, true, "signature"},
		{"signature size trailer", fx.info.Size - 2, true, "no valid cms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := append([]byte(nil), good...)
			bad[c.offset] ^= 0x01
			path := filepath.Join(t.TempDir(), "tampered.raucb")
			testkit.Must(t, os.WriteFile(path, bad, 0o644))
			out, err := rauc(t, raucPath, "info", "--keyring", fx.pki.ca, path)
			if c.infoRejects {
				if err == nil {
					t.Fatalf("rauc info accepted a bundle with a flipped byte in the %s", c.name)
				}
			} else {
				if err != nil {
					t.Fatalf("rauc info refused a flip in the %s; RAUC 1.8 checks only the signature there: %v", c.name, err)
				}
				out, err = rauc(t, raucPath, "extract", "--keyring", fx.pki.ca, path, filepath.Join(t.TempDir(), "out"))
				if err == nil {
					t.Fatalf("rauc extract accepted a bundle with a flipped byte in the %s", c.name)
				}
			}
			if !strings.Contains(strings.ToLower(out), c.want) {
				t.Errorf("rauc's refusal does not say %q", c.want)
			}
		})
	}
}

// TestRAUCRejectsUntrustedSigner: a bundle signed by another CA's signer is refused.
func TestRAUCRejectsUntrustedSigner(t *testing.T) {
	raucPath := needRAUC(t)
	fx := newBundle(t)
	other := newPKI(t, filepath.Join(fx.dir, "other-keys"))
	out, err := rauc(t, raucPath, "info", "--keyring", other.ca, fx.bundle)
	if err == nil {
		t.Fatal("rauc info accepted a bundle whose signer the keyring does not trust")
	}
	if !strings.Contains(out, "unable to get local issuer certificate") {
		t.Errorf("rauc info's refusal does not name the missing issuer")
	}
}

// TestCreateIsReproducible: the same inputs and time give the same bytes.
func TestCreateIsReproducible(t *testing.T) {
	testkit.NeedTool(t, "mksquashfs", "squashfs-tools", "reproducibility was not checked")
	fx := newBundle(t)
	again := filepath.Join(fx.dir, "again.raucb")
	info, err := Create(context.Background(), again, Spec{
		Compatible: `otabake test\machine`, Version: "1.2.3", Build: "20260102030405",
		Images: fx.images, Signer: fx.pki.signer,
	})
	testkit.Must(t, err)
	if info.SHA256 != fx.info.SHA256 || testkit.SHA256File(t, again) != testkit.SHA256File(t, fx.bundle) {
		t.Errorf("two builds differ: %s and %s", fx.info.SHA256, info.SHA256)
	}
	if info.SHA256 != testkit.SHA256File(t, again) {
		t.Errorf("Info.SHA256 %s is not the file's", info.SHA256)
	}
	entries, err := os.ReadDir(fx.dir)
	testkit.Must(t, err)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind beside the bundle: %s", e.Name())
		}
	}
}

func TestCreateRefusesBadSpecs(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, filepath.Join(dir, "keys"))
	img := filepath.Join(dir, "rootfs.ext4")
	writeImage(t, img, 8192, 3)
	empty := filepath.Join(dir, "empty.img")
	testkit.Must(t, os.WriteFile(empty, nil, 0o644))
	ok := func() Spec {
		return Spec{Compatible: "c", Version: "1", Images: []Image{{SlotClass: "rootfs", Path: img}}, Signer: p.signer}
	}
	for _, c := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"no signer", func(s *Spec) { s.Signer = nil }, "no signer"},
		{"no compatible", func(s *Spec) { s.Compatible = "" }, "no compatible"},
		{"newline in version", func(s *Spec) { s.Version = "1\n[image.x]" }, "control character"},
		{"leading space", func(s *Spec) { s.Compatible = " c" }, "white space"},
		{"no images", func(s *Spec) { s.Images = nil }, "no slot images"},
		{"dotted slot class", func(s *Spec) { s.Images[0].SlotClass = "rootfs.a" }, "slot class"},
		{"two images, one class", func(s *Spec) {
			s.Images = append(s.Images, Image{SlotClass: "rootfs", Path: img, Filename: "b.img"})
		}, "has two images"},
		{"manifest name", func(s *Spec) { s.Images[0].Filename = ManifestName }, "two files named"},
		{"path in filename", func(s *Spec) { s.Images[0].Filename = "../x" }, "filename"},
		{"empty image", func(s *Spec) { s.Images[0].Path = empty }, "is empty"},
		{"missing image", func(s *Spec) { s.Images[0].Path = filepath.Join(dir, "nope") }, "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := ok()
			c.edit(&s)
			out := filepath.Join(dir, "x.raucb")
			_, err := Create(context.Background(), out, s)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s was written", out)
			}
		})
	}
}

// TestMatchesRAUCsOwnBundle builds a bundle with `rauc bundle` and checks that its layout is
// the one Create writes: the trailer, the inline-signed manifest's [bundle] values, and a hash
// tree that appendHashTree recomputes byte for byte from RAUC's salt.
func TestMatchesRAUCsOwnBundle(t *testing.T) {
	raucPath := needRAUC(t)
	dir := t.TempDir()
	p := newPKI(t, filepath.Join(dir, "keys"))
	content := filepath.Join(dir, "content")
	testkit.Must(t, os.MkdirAll(content, 0o755))
	writeImage(t, filepath.Join(content, "rootfs.ext4"), 1<<20, 4)
	testkit.WriteFile(t, filepath.Join(content, ManifestName),
		"[update]\ncompatible=c\nversion=1\n\n[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=rootfs.ext4\n")
	theirs := filepath.Join(dir, "theirs.raucb")
	if _, err := rauc(t, raucPath, "bundle", "--cert", filepath.Join(dir, "keys", sign.DevSignerCert),
		"--key", filepath.Join(dir, "keys", sign.DevSignerKey), content, theirs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(theirs)
	testkit.Must(t, err)
	sigSize := binary.BigEndian.Uint64(b[len(b)-8:])
	sig := b[uint64(len(b))-8-sigSize : len(b)-8]
	m, err := sign.AttachedContent(sig)
	if err != nil {
		t.Fatalf("RAUC's signature has no attached manifest: %v", err)
	}
	if _, err := sign.VerifyCMS(sig, mustPool(t, p.ca), time.Now()); err != nil {
		t.Errorf("sign.VerifyCMS refuses RAUC's own signature: %v", err)
	}
	t.Logf("RAUC's signed manifest:\n%s", m)
	values := map[string]string{}
	for _, line := range strings.Split(string(m), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			values[k] = v
		}
	}
	treeSize, err := strconv.ParseUint(values["verity-size"], 10, 64)
	testkit.Must(t, err)
	payload := uint64(len(b)) - 8 - sigSize - treeSize
	salt, err := hex.DecodeString(values["verity-salt"])
	testkit.Must(t, err)

	mine := filepath.Join(dir, "mine")
	testkit.Must(t, os.WriteFile(mine, b[:payload], 0o644))
	f, err := os.OpenFile(mine, os.O_RDWR, 0)
	testkit.Must(t, err)
	root, size, err := appendHashTree(context.Background(), f, payload/verityBlockSize, salt)
	f.Close()
	testkit.Must(t, err)
	if hex.EncodeToString(root[:]) != values["verity-hash"] || size != treeSize {
		t.Errorf("recomputed root %x, tree %d bytes; RAUC's %s, %d", root, size, values["verity-hash"], treeSize)
	}
	if got := testkit.ReadFile(t, mine); got != string(b[:payload+treeSize]) {
		t.Errorf("recomputed hash tree differs from RAUC's")
	}
	// The manifest text, GKeyFile's formatting included, is what manifest() writes.
	ims := []image{{Image: Image{SlotClass: "rootfs", Filename: "rootfs.ext4"}, size: 1 << 20, sha256: values["sha256"]}}
	want := manifest(Spec{Compatible: "c", Version: "1"}, ims, &Info{VerityHash: values["verity-hash"], VeritySalt: values["verity-salt"], VeritySize: treeSize})
	if string(m) != string(want) {
		t.Errorf("RAUC's signed manifest:\n%q\nmanifest() writes:\n%q", m, want)
	}
}

func mustPool(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	pool, err := sign.LoadCertPool(path)
	testkit.Must(t, err)
	return pool
}
