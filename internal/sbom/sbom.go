// Package sbom writes SPDX 2.3 JSON software bills of materials for a root filesystem from its
// package database (dpkg, opkg or apk). The output is deterministic: packages are sorted, the
// creation time is the build's SOURCE_DATE_EPOCH and the document namespace is derived from
// the system and release, so two builds of the same release give identical bytes.
package sbom

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/otabake/otabake/internal/bake"
	"github.com/otabake/otabake/internal/rootfs"
)

// Options names what the SBOM describes.
type Options struct {
	// System is the system name; it names the document and its root package.
	System string
	// Version is the release version of the system.
	Version string
	// ReleaseID defaults to "<System>@<Version>" and, with System, determines the namespace.
	ReleaseID string
	// Created is the document creation time; pass SOURCE_DATE_EPOCH for reproducible output.
	Created time.Time
	// Tool names the creating tool, e.g. "otabake-1.2.0" (default "otabake").
	Tool string
}

// NamespaceBase prefixes every document namespace. SPDX needs a unique URI, not a resolvable
// one; this one is stable so that the same release always gets the same namespace.
const NamespaceBase = "https://spdx.otabake.dev/"

// databases are the package databases Generate looks for, relative to the rootfs.
var databases = []struct {
	path  string
	parse func(io.Reader) ([]Package, error)
}{
	{"var/lib/dpkg/status", ParseDpkgStatus},
	{"var/lib/opkg/status", ParseOpkgStatus},
	{"usr/lib/opkg/status", ParseOpkgStatus},
	{"lib/apk/db/installed", ParseAPKInstalled},
}

// Generate reads the package databases of the rootfs at rootfsDir and returns the SPDX 2.3
// JSON document. A rootfs without a package database yields a document with the system
// package alone and a warning.
func Generate(rootfsDir string, opts Options) (doc []byte, warnings []string, err error) {
	if opts.System == "" || opts.Version == "" {
		return nil, nil, errors.New("sbom: system name and version are required")
	}
	if opts.Created.IsZero() {
		return nil, nil, errors.New("sbom: creation time is zero: pass SOURCE_DATE_EPOCH")
	}
	root, err := rootfs.OpenRoot(rootfsDir)
	if err != nil {
		return nil, nil, fmt.Errorf("sbom: rootfs: %w", err)
	}
	defer root.Close()
	var pkgs []Package
	found := 0
	for _, db := range databases {
		f, err := root.Open(db.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("sbom: package database: %w", err)
		}
		fi, err := f.Stat()
		if err == nil && fi.Size() > maxDatabase {
			err = fmt.Errorf("%s is %d bytes, %w of %d bytes", db.path, fi.Size(), rootfs.ErrTooLarge, maxDatabase)
		}
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("sbom: package database: %w", err)
		}
		p, err := db.parse(bufio.NewReaderSize(io.LimitReader(f, maxDatabase), 64<<10))
		f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("sbom: parse %s: %w", db.path, err)
		}
		found++
		pkgs = append(pkgs, p...)
	}
	if found == 0 {
		paths := make([]string, len(databases))
		for i, db := range databases {
			paths[i] = db.path
		}
		warnings = append(warnings, "no package database found in the rootfs (looked for "+strings.Join(paths, ", ")+"): the SBOM lists the system alone")
	}
	osID, err := osReleaseID(root)
	if err != nil {
		return nil, nil, fmt.Errorf("sbom: %w", err)
	}
	d := Build(pkgs, osID, opts)
	var buf bytes.Buffer
	if err := spdxjson.Write(d, &buf, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
		return nil, nil, fmt.Errorf("sbom: encode: %w", err)
	}
	return buf.Bytes(), warnings, nil
}

// Build assembles the SPDX document for pkgs. osID is the os-release ID of the rootfs, used as
// the purl namespace of deb and apk packages ("debian" and "alpine" when empty).
func Build(pkgs []Package, osID string, opts Options) *v2_3.Document {
	releaseID := bake.ReleaseID(opts.System, opts.Version, opts.ReleaseID)
	tool := opts.Tool
	if tool == "" {
		tool = "otabake"
	}
	sorted := append([]Package(nil), pkgs...)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Architecture != b.Architecture {
			return a.Architecture < b.Architecture
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Manager < b.Manager
	})
	sum := sha256.Sum256([]byte(opts.System + "\x00" + releaseID))
	const systemID = common.ElementID("System")
	d := &v2_3.Document{
		SPDXVersion:       v2_3.Version,
		DataLicense:       v2_3.DataLicense,
		SPDXIdentifier:    common.ElementID("DOCUMENT"),
		DocumentName:      opts.System + "-" + opts.Version,
		DocumentNamespace: NamespaceBase + pathEscape(opts.System) + "/" + pathEscape(releaseID) + "-" + hex.EncodeToString(sum[:8]),
		CreationInfo: &v2_3.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: tool}},
			Created:  opts.Created.UTC().Format("2006-01-02T15:04:05Z"),
		},
	}
	d.Packages = append(d.Packages, &v2_3.Package{
		PackageName:             opts.System,
		PackageSPDXIdentifier:   systemID,
		PackageVersion:          opts.Version,
		PackageDownloadLocation: "NOASSERTION",
		PackageLicenseConcluded: "NOASSERTION",
		PackageLicenseDeclared:  "NOASSERTION",
		PackageCopyrightText:    "NOASSERTION",
		PackageComment:          "release " + releaseID,
		PrimaryPackagePurpose:   "OPERATING-SYSTEM",
	})
	d.Relationships = append(d.Relationships, &v2_3.Relationship{
		RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", string(systemID)), Relationship: common.TypeRelationshipDescribe,
	})
	used := map[common.ElementID]bool{systemID: true}
	for _, p := range sorted {
		id := elementID(p)
		for n := 2; used[id]; n++ {
			id = elementID(p) + common.ElementID("-"+strconv.Itoa(n))
		}
		used[id] = true
		d.Packages = append(d.Packages, spdxPackage(p, id, osID))
		d.Relationships = append(d.Relationships, &v2_3.Relationship{
			RefA: common.MakeDocElementID("", string(systemID)), RefB: common.MakeDocElementID("", string(id)), Relationship: common.TypeRelationshipContains,
		})
	}
	return d
}

func spdxPackage(p Package, id common.ElementID, osID string) *v2_3.Package {
	sp := &v2_3.Package{
		PackageName:             p.Name,
		PackageSPDXIdentifier:   id,
		PackageVersion:          p.Version,
		PackageSupplier:         supplier(p.Maintainer),
		PackageDownloadLocation: "NOASSERTION",
		PackageLicenseConcluded: "NOASSERTION",
		PackageLicenseDeclared:  "NOASSERTION",
		PackageCopyrightText:    "NOASSERTION",
		PackageHomePage:         p.Homepage,
		PackageSummary:          p.Summary,
	}
	if p.Source != "" && p.Source != p.Name {
		sp.PackageSourceInfo = "built from source package " + p.Source
	}
	if p.License != "" {
		if expr, ok := licenseExpression(p.License); ok {
			sp.PackageLicenseDeclared = expr
		} else {
			sp.PackageLicenseComments = "declared by the package manager as: " + p.License
		}
	}
	sp.PackageExternalReferences = []*v2_3.PackageExternalReference{{
		Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: PURL(p, osID),
	}}
	return sp
}

// supplier turns "Name <email>" into SPDX's "Person: Name (email)" form.
func supplier(m string) *common.Supplier {
	m = strings.TrimSpace(m)
	if m == "" {
		return &common.Supplier{Supplier: "NOASSERTION"}
	}
	if i := strings.IndexByte(m, '<'); i >= 0 && strings.HasSuffix(m, ">") {
		m = strings.TrimSpace(m[:i]) + " (" + m[i+1:len(m)-1] + ")"
	}
	typ := "Person"
	low := strings.ToLower(m)
	for _, w := range []string{"maintainers", "team", "project", "gmbh", "inc.", "ltd", "foundation", "developers"} {
		if strings.Contains(low, w) {
			typ = "Organization"
			break
		}
	}
	return &common.Supplier{Supplier: m, SupplierType: typ}
}

// elementID makes an SPDX identifier ([A-Za-z0-9.-]) from manager, name and architecture.
func elementID(p Package) common.ElementID {
	var b strings.Builder
	b.WriteString("Package-" + string(p.Manager) + "-")
	for _, s := range []string{p.Name, "-", p.Architecture} {
		for _, r := range s {
			if r < 0x80 && (r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				b.WriteRune(r)
			} else {
				b.WriteByte('-')
			}
		}
	}
	return common.ElementID(strings.TrimSuffix(b.String(), "-"))
}

// maxDatabase bounds a package database (Debian's status file with every package of the
// archive installed stays below 100 MiB).
const maxDatabase = 256 << 20

// maxOSRelease bounds os-release, a few hundred bytes by nature.
const maxOSRelease = 1 << 20

// osReleaseID reads ID from the rootfs's os-release, or "" when there is none or its ID is
// unusable. An os-release that is refused (a FIFO, a device, a link out of the rootfs, over
// maxOSRelease) is an error.
func osReleaseID(root *rootfs.Root) (string, error) {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		data, err := root.ReadFile(p, maxOSRelease)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, maxOSRelease)
		for sc.Scan() {
			v, ok := strings.CutPrefix(sc.Text(), "ID=")
			if !ok {
				continue
			}
			v = strings.Trim(v, `"'`)
			for _, r := range v {
				if !(r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z') {
					return "", nil
				}
			}
			return v, nil
		}
		return "", nil
	}
	return "", nil
}
