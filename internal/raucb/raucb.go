// Package raucb makes native RAUC bundles (.raucb) in the `verity` format, the format RAUC
// 1.5+ installs by default, without RAUC itself: rauc src/bundle.c (create_bundle, sign_bundle)
// and docs/reference.rst ("Manifest", "Bundle Formats") are the specification, and the tests
// check every bundle with Debian's real `rauc`.
//
// A verity bundle is, byte for byte:
//
//	squashfs (mksquashfs, padded to 4096 bytes) holding manifest.raucm and the slot images
//	dm-verity hash tree over the squashfs (verity.go)
//	CMS SignedData with the manifest attached (the "external" manifest, with the verity values)
//	the CMS's size, 8 bytes big-endian
package raucb

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/ctxio"
	"github.com/otabake/otabake/internal/sign"
	"github.com/otabake/otabake/internal/tool"
)

// ManifestName is the manifest's name at the squashfs root (rauc src/bundle.c create_bundle).
const ManifestName = "manifest.raucm"

// Image is one slot image of a bundle.
type Image struct {
	// SlotClass is the slot class the image is installed to ([image.<SlotClass>]).
	SlotClass string
	// Path is the image file.
	Path string
	// Filename is its name in the bundle; "" is Path's base name.
	Filename string
}

// Spec is what a bundle holds and who signs it.
type Spec struct {
	// Compatible must equal the device's system.conf compatible ([update] compatible).
	Compatible string
	// Version is [update] version, free text to RAUC; Build is [update] build (optional).
	Version, Build string
	Images         []Image
	Signer         *sign.Signer
	// Time is every time stored in the squashfs (mksquashfs -mkfs-time, -all-time): the
	// build's one time, so that the same inputs give the same bundle. Zero is the signer's
	// SigningTime, and the Unix epoch when that is zero too.
	Time time.Time
}

// Info describes a written bundle.
type Info struct {
	// Manifest is the signed manifest, the one `rauc info` shows.
	Manifest []byte
	// VerityHash and VeritySalt are hex; VeritySize is the hash tree's size in bytes.
	VerityHash, VeritySalt string
	VeritySize             uint64
	// PayloadSize is the squashfs's size; Size is the bundle's.
	PayloadSize, Size int64
	SHA256            string
}

// Names RAUC accepts and that cannot break the manifest or the squashfs: a slot class is one
// component of the group name "image.<class>[.<variant>]" (rauc src/manifest.c), a filename one
// plain file at the squashfs root.
var (
	slotClassRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	filenameRe  = regexp.MustCompile(`^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$`)
)

type image struct {
	Image
	size   int64
	sha256 string
}

// Create writes the bundle to out atomically: out appears complete or not at all. The slot
// images are streamed (hashed, then hard-linked, or copied where a link is impossible, into a
// work directory beside out that mksquashfs packs); mksquashfs is the one external program.
func Create(ctx context.Context, out string, spec Spec) (*Info, error) {
	if spec.Signer == nil {
		return nil, errors.New("rauc bundle: no signer (RAUC refuses unsigned bundles)")
	}
	if err := checkValue("compatible", spec.Compatible, true); err != nil {
		return nil, err
	}
	if err := checkValue("version", spec.Version, false); err != nil {
		return nil, err
	}
	if err := checkValue("build", spec.Build, false); err != nil {
		return nil, err
	}
	if len(spec.Images) == 0 {
		return nil, errors.New("rauc bundle: no slot images")
	}
	images := make([]image, len(spec.Images))
	classes, names := map[string]bool{}, map[string]bool{ManifestName: true}
	for i, im := range spec.Images {
		if im.Filename == "" {
			im.Filename = filepath.Base(im.Path)
		}
		switch {
		case !slotClassRe.MatchString(im.SlotClass):
			return nil, fmt.Errorf("rauc bundle: slot class %q: use letters, digits, - and _", im.SlotClass)
		case classes[im.SlotClass]:
			return nil, fmt.Errorf("rauc bundle: slot class %q has two images", im.SlotClass)
		case !filenameRe.MatchString(im.Filename):
			return nil, fmt.Errorf("rauc bundle: image filename %q: use letters, digits, ., +, - and _, not first a dot", im.Filename)
		case names[im.Filename]:
			return nil, fmt.Errorf("rauc bundle: two files named %q", im.Filename)
		}
		classes[im.SlotClass], names[im.Filename] = true, true
		images[i].Image = im
	}
	for i := range images {
		size, sum, err := hashFile(ctx, images[i].Path)
		if err != nil {
			return nil, fmt.Errorf("rauc bundle: image for slot class %s: %w", images[i].SlotClass, err)
		}
		if size == 0 {
			// A zero size reads as "no size" to RAUC (rauc src/manifest.c check_manifest_common).
			return nil, fmt.Errorf("rauc bundle: image %s for slot class %s is empty", images[i].Path, images[i].SlotClass)
		}
		images[i].size, images[i].sha256 = size, sum
	}

	when := spec.Time
	if when.IsZero() {
		when = spec.Signer.SigningTime
	}
	if when.IsZero() || when.Before(time.Unix(0, 0)) {
		when = time.Unix(0, 0)
	}

	// The manifest inside the squashfs names the format but holds no verity values (rauc
	// src/manifest.c check_manifest_internal); the signed one adds them.
	internal := manifest(spec, images, nil)
	work, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".content-")
	if err != nil {
		return nil, fmt.Errorf("rauc bundle: work directory: %w", err)
	}
	defer atomicfile.Track(work)()
	defer os.RemoveAll(work)
	if err := os.WriteFile(filepath.Join(work, ManifestName), internal, 0o644); err != nil {
		return nil, fmt.Errorf("rauc bundle: %w", err)
	}
	for _, im := range images {
		if err := stage(ctx, im.Path, filepath.Join(work, im.Filename)); err != nil {
			return nil, fmt.Errorf("rauc bundle: image for slot class %s: %w", im.SlotClass, err)
		}
	}

	f, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return nil, fmt.Errorf("rauc bundle: %w", err)
	}
	defer f.Close()
	if err := mksquashfs(ctx, work, f.Name(), when); err != nil {
		return nil, err
	}
	// mksquashfs rewrites the file it is given in place (-noappend truncates it), so f is
	// still the file that will be renamed to out.
	payload, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("rauc bundle: %w", err)
	}
	if st, err := os.Stat(f.Name()); err != nil || st.Size() != payload {
		return nil, fmt.Errorf("rauc bundle: mksquashfs replaced %s instead of writing it", f.Name())
	}
	// rauc src/bundle.c sign_bundle refuses a payload that is not a multiple of 4096 bytes
	// (mksquashfs pads to 4096 unless -nopad) or not larger than one block.
	if payload%verityBlockSize != 0 || payload <= verityBlockSize {
		return nil, fmt.Errorf("rauc bundle: squashfs size %d is not a multiple of 4096 larger than 4096", payload)
	}

	// RAUC draws the salt at random; a salt derived from the manifest (which holds every
	// image's digest) keeps the bundle reproducible and still differs between payloads.
	saltSum := sha256.Sum256(append([]byte("otabake rauc verity salt\x00"), internal...))
	salt := saltSum[:]
	root, treeSize, err := appendHashTree(ctx, f.File, uint64(payload)/verityBlockSize, salt)
	if err != nil {
		return nil, fmt.Errorf("rauc bundle: %w", err)
	}
	info := &Info{
		VerityHash:  hex.EncodeToString(root[:]),
		VeritySalt:  hex.EncodeToString(salt),
		VeritySize:  treeSize,
		PayloadSize: payload,
	}
	info.Manifest = manifest(spec, images, info)
	// RAUC signs the manifest with the manifest attached ("inline"), not the payload detached:
	// rauc src/signature.c cms_sign_manifest calls cms_sign(content, FALSE, ...), which is
	// CMS_sign with CMS_BINARY | CMS_NOSMIMECAP, the structure sign.SignCMS makes.
	sig, err := spec.Signer.SignCMS(info.Manifest)
	if err != nil {
		return nil, fmt.Errorf("rauc bundle: %w", err)
	}
	trailer := binary.BigEndian.AppendUint64(append([]byte{}, sig...), uint64(len(sig)))
	if _, err := f.WriteAt(trailer, payload+int64(treeSize)); err != nil {
		return nil, fmt.Errorf("rauc bundle: append signature: %w", err)
	}
	info.Size = payload + int64(treeSize) + int64(len(trailer))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rauc bundle: %w", err)
	}
	h := sha256.New()
	if n, err := io.Copy(h, ctxio.Reader(ctx, f)); err != nil || n != info.Size {
		return nil, fmt.Errorf("rauc bundle: hash %s: %d of %d bytes: %v", out, n, info.Size, err)
	}
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	if err := f.Commit(); err != nil {
		return nil, fmt.Errorf("rauc bundle: %w", err)
	}
	return info, nil
}

// manifest is the manifest in GKeyFile syntax as RAUC writes it (rauc src/manifest.c
// prepare_manifest; the example in docs/reference.rst "Manifest"): [update], [bundle], then
// each [image.<class>] with sha256, size, filename; groups separated by a blank line. With
// verity nil it is the manifest inside the squashfs, without the verity values.
func manifest(spec Spec, images []image, verity *Info) []byte {
	var b strings.Builder
	b.WriteString("[update]\ncompatible=" + escape(spec.Compatible) + "\n")
	if spec.Version != "" {
		b.WriteString("version=" + escape(spec.Version) + "\n")
	}
	if spec.Build != "" {
		b.WriteString("build=" + escape(spec.Build) + "\n")
	}
	b.WriteString("\n[bundle]\nformat=verity\n")
	if verity != nil {
		b.WriteString("verity-hash=" + verity.VerityHash + "\n")
		b.WriteString("verity-salt=" + verity.VeritySalt + "\n")
		b.WriteString("verity-size=" + strconv.FormatUint(verity.VeritySize, 10) + "\n")
	}
	for _, im := range images {
		b.WriteString("\n[image." + im.SlotClass + "]\n")
		b.WriteString("sha256=" + im.sha256 + "\n")
		b.WriteString("size=" + strconv.FormatInt(im.size, 10) + "\n")
		b.WriteString("filename=" + im.Filename + "\n")
	}
	return []byte(b.String())
}

// escape is GKeyFile's escaping of a string value (glib g_key_file_parse_string_as_value) for
// the one character checkValue lets through that needs it.
func escape(s string) string { return strings.ReplaceAll(s, `\`, `\\`) }

// checkValue refuses what GKeyFile would change or cut: control characters (a newline would
// start a new key), and leading or trailing white space.
func checkValue(key, v string, required bool) error {
	if v == "" {
		if required {
			return fmt.Errorf("rauc bundle: no %s", key)
		}
		return nil
	}
	if strings.TrimSpace(v) != v {
		return fmt.Errorf("rauc bundle: %s %q starts or ends with white space", key, v)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("rauc bundle: %s %q has a control character", key, v)
		}
	}
	return nil
}

// hashFile streams path through SHA-256.
func hashFile(ctx context.Context, path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return 0, "", err
	} else if !st.Mode().IsRegular() {
		return 0, "", fmt.Errorf("%s is not a regular file", path)
	}
	h := sha256.New()
	n, err := io.Copy(h, ctxio.Reader(ctx, f))
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// stage puts src at dst for mksquashfs: a hard link when src is on the same file system, a
// streamed copy otherwise.
func stage(ctx context.Context, src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, ctxio.Reader(ctx, in)); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// mksquashfs packs dir into dest with RAUC's options (rauc src/bundle.c mksquashfs: -all-root
// -noappend -no-progress -no-xattrs) and every time set to when, so the squashfs is
// reproducible. Its default gzip compression is what RAUC's bundles use unless configured.
func mksquashfs(ctx context.Context, dir, dest string, when time.Time) error {
	t := strconv.FormatInt(when.Unix(), 10)
	_, err := tool.Run(ctx, tool.Cmd{
		Path: "mksquashfs", Package: "squashfs-tools",
		Args: []string{dir, dest, "-all-root", "-noappend", "-no-progress", "-no-xattrs",
			"-mkfs-time", t, "-all-time", t},
		Env: []string{"SOURCE_DATE_EPOCH"},
	})
	if err != nil {
		return fmt.Errorf("rauc bundle: %w", err)
	}
	return nil
}
