package sbom

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/otabake/otabake/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite golden files")

var created = time.Unix(1_700_000_000, 0)

func generate(t *testing.T, dir string, opts Options) (*spdx.Document, []byte, []string) {
	t.Helper()
	if opts.System == "" {
		opts = Options{System: "pc", Version: "1.2.3", Created: created}
	}
	data, warnings, err := Generate(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("tools-golang cannot read the output back: %v", err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Fatalf("spdxlib: %v", err)
	}
	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 || described[0] != "System" {
		t.Fatalf("described packages %v, %v", described, err)
	}
	return doc, data, warnings
}

type wantPkg struct {
	name, version, supplier, license, purl string
}

func TestGenerate(t *testing.T) {
	tests := []struct {
		dir  string
		want []wantPkg
	}{
		{"testdata/dpkg", []wantPkg{
			{"base-files", "12.4+deb12u11", "Person: Santiago Vila (sanvila@debian.org)", "NOASSERTION", "pkg:deb/debian/base-files@12.4%2Bdeb12u11?arch=amd64"},
			{"libc6", "2.36-9+deb12u14", "Organization: GNU Libc Maintainers (debian-glibc@lists.debian.org)", "NOASSERTION", "pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64"},
			{"libstdc++6", "12.2.0-14+deb12u1", "Organization: Debian GCC Maintainers (debian-gcc@lists.debian.org)", "NOASSERTION", "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14%2Bdeb12u1?arch=amd64"},
			{"tzdata", "2025b-0+deb12u2", "Organization: GNU Libc Maintainers (debian-glibc@lists.debian.org)", "NOASSERTION", "pkg:deb/debian/tzdata@2025b-0%2Bdeb12u2?arch=all"},
			{"zlib1g", "1:1.2.13.dfsg-1", "Person: Mark Brown (broonie@debian.org)", "NOASSERTION", "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64"},
		}},
		{"testdata/opkg", []wantPkg{
			{"busybox", "1.36.1-r0", "NOASSERTION", "NOASSERTION", "pkg:opkg/busybox@1.36.1-r0?arch=cortexa53"},
			{"kernel-module-foo", "6.6.23+git0+abc-r0", "NOASSERTION", "GPL-2.0-only", "pkg:opkg/kernel-module-foo@6.6.23%2Bgit0%2Babc-r0?arch=raspberrypi4_64"},
			{"libc6", "2.39+git0+cfdb9c9d5a-r0", "NOASSERTION", "NOASSERTION", "pkg:opkg/libc6@2.39%2Bgit0%2Bcfdb9c9d5a-r0?arch=cortexa53"},
			{"openssl", "3.2.1-r0", "NOASSERTION", "Apache-2.0", "pkg:opkg/openssl@3.2.1-r0?arch=cortexa53"},
			{"rugix-ctrl", "0.8.15-r0", "Organization: Silitics GmbH (info@silitics.com)", "MIT OR Apache-2.0", "pkg:opkg/rugix-ctrl@0.8.15-r0?arch=cortexa53"},
		}},
		{"testdata/apk", []wantPkg{
			{"busybox", "1.36.1-r29", "Person: Sören Tempel (soeren+alpine@soeren-tempel.net)", "GPL-2.0-only", "pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64"},
			{"ca-certificates-bundle", "20240705-r0", "Person: Natanael Copa (ncopa@alpinelinux.org)", "MPL-2.0 AND MIT", "pkg:apk/alpine/ca-certificates-bundle@20240705-r0?arch=x86_64"},
			{"musl", "1.2.5-r0", "Person: Natanael Copa (ncopa@alpinelinux.org)", "MIT", "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64"},
		}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.dir), func(t *testing.T) {
			doc, data, warnings := generate(t, tt.dir, Options{})
			if len(warnings) != 0 {
				t.Fatalf("warnings: %v", warnings)
			}
			if doc.SPDXVersion != "SPDX-2.3" || doc.DocumentName != "pc-1.2.3" || doc.CreationInfo.Created != "2023-11-14T22:13:20Z" {
				t.Fatalf("document header: %s %s %s", doc.SPDXVersion, doc.DocumentName, doc.CreationInfo.Created)
			}
			if !strings.HasPrefix(doc.DocumentNamespace, NamespaceBase+"pc/pc%401.2.3-") {
				t.Fatalf("namespace %s", doc.DocumentNamespace)
			}
			if len(doc.Packages) != len(tt.want)+1 {
				t.Fatalf("%d packages, want %d + system", len(doc.Packages), len(tt.want))
			}
			sys := doc.Packages[0]
			if sys.PackageName != "pc" || sys.PackageVersion != "1.2.3" || sys.PrimaryPackagePurpose != "OPERATING-SYSTEM" {
				t.Fatalf("system package %+v", sys)
			}
			for i, w := range tt.want {
				p := doc.Packages[i+1]
				sup := "NOASSERTION"
				if p.PackageSupplier != nil && p.PackageSupplier.SupplierType != "" {
					sup = p.PackageSupplier.SupplierType + ": " + p.PackageSupplier.Supplier
				}
				got := wantPkg{p.PackageName, p.PackageVersion, sup, p.PackageLicenseDeclared, ""}
				if len(p.PackageExternalReferences) == 1 && p.PackageExternalReferences[0].RefType == "purl" {
					got.purl = p.PackageExternalReferences[0].Locator
				}
				if got != w {
					t.Errorf("package %d:\n got %+v\nwant %+v", i, got, w)
				}
			}
			describes, contains := 0, 0
			for _, r := range doc.Relationships {
				switch {
				case r.Relationship == "DESCRIBES" && r.RefA.ElementRefID == "DOCUMENT" && r.RefB.ElementRefID == sys.PackageSPDXIdentifier:
					describes++
				case r.Relationship == "CONTAINS" && r.RefA.ElementRefID == sys.PackageSPDXIdentifier:
					contains++
				}
			}
			if describes != 1 || contains != len(tt.want) {
				t.Fatalf("relationships: %d DESCRIBES, %d CONTAINS", describes, contains)
			}
			golden := filepath.Join("testdata", filepath.Base(tt.dir)+".spdx.json")
			if *update {
				os.WriteFile(golden, data, 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(data, want) {
				t.Fatalf("output differs from %s (run go test -update after checking the change)", golden)
			}
		})
	}
}

func TestGenerateUsrLibOpkg(t *testing.T) {
	doc, _, _ := generate(t, "testdata/opkg-usr", Options{})
	if len(doc.Packages) != 6 {
		t.Fatalf("%d packages", len(doc.Packages))
	}
}

func TestGenerateDeterministic(t *testing.T) {
	opts := Options{System: "pc", Version: "7", ReleaseID: "pc@7", Created: created}
	a, _, err := Generate("testdata/dpkg", opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Generate("testdata/dpkg", opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two runs differ")
	}
	opts.ReleaseID = "pc@7-rebuild"
	c, _, _ := Generate("testdata/dpkg", opts)
	da, _ := spdxjson.Read(bytes.NewReader(a))
	dc, _ := spdxjson.Read(bytes.NewReader(c))
	if da.DocumentNamespace == dc.DocumentNamespace {
		t.Fatal("namespace does not depend on the release id")
	}
}

func TestGenerateNoDatabase(t *testing.T) {
	doc, _, warnings := generate(t, t.TempDir(), Options{})
	if len(warnings) != 1 || !strings.Contains(warnings[0], "no package database") {
		t.Fatalf("warnings %v", warnings)
	}
	if len(doc.Packages) != 1 || doc.Packages[0].PackageName != "pc" {
		t.Fatalf("packages %+v", doc.Packages)
	}
}

func TestGenerateErrors(t *testing.T) {
	bad := t.TempDir()
	os.MkdirAll(filepath.Join(bad, "var/lib/dpkg"), 0o755)
	os.WriteFile(filepath.Join(bad, "var/lib/dpkg/status"), []byte("Package: a\nStatus: install ok installed\nnot a field\n"), 0o644)
	tests := []struct {
		dir  string
		opts Options
		want string
	}{
		{bad, Options{System: "a", Version: "1", Created: created}, "var/lib/dpkg/status: line 3"},
		{t.TempDir(), Options{System: "a", Version: "1"}, "SOURCE_DATE_EPOCH"},
		{t.TempDir(), Options{Version: "1", Created: created}, "required"},
		{filepath.Join(bad, "missing"), Options{System: "a", Version: "1", Created: created}, "rootfs"},
	}
	for _, tt := range tests {
		_, _, err := Generate(tt.dir, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		parse func(r *strings.Reader) error
		in    string
		want  string
	}{
		{"dpkg no package", dpkg, "Version: 1\nStatus: install ok installed\n", "line 1: stanza without a Package"},
		{"dpkg continuation first", dpkg, " continued\n", "continuation line"},
		{"dpkg bad line", dpkg, "Package: a\n\nbad\n", "line 3"},
		{"dpkg too long", dpkg, "Package: " + strings.Repeat("a", maxLine+1), "longer than"},
		{"apk no P", apk, "V:1\n", "without a P: line"},
		{"apk bad line", apk, "P:a\nnonsense\n", "line 2"},
	}
	for _, tt := range tests {
		err := tt.parse(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func dpkg(r *strings.Reader) error { _, err := ParseDpkgStatus(r); return err }
func apk(r *strings.Reader) error  { _, err := ParseAPKInstalled(r); return err }

func TestLicenseExpression(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"MIT", "MIT", true},
		{"GPLv2 & MIT", "GPL-2.0-only AND MIT", true},
		{"(MIT | Apache-2.0) & BSD-3-Clause", "(MIT OR Apache-2.0) AND BSD-3-Clause", true},
		{"GPL-2.0-or-later WITH Linux-syscall-note", "GPL-2.0-or-later WITH Linux-syscall-note", true},
		{"GPL-2.0+", "GPL-2.0-or-later", true},
		{"Public Domain, see COPYING", "", false},
		{"MIT AND", "", false},
		{"(MIT", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := licenseExpression(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("licenseExpression(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestPURL(t *testing.T) {
	tests := []struct {
		p    Package
		os   string
		want string
	}{
		{Package{Manager: Dpkg, Name: "libc6", Version: "2.36-9", Architecture: "arm64"}, "raspbian", "pkg:deb/raspbian/libc6@2.36-9?arch=arm64"},
		{Package{Manager: APK, Name: "a b", Version: "1@2"}, "", "pkg:apk/alpine/a%20b@1%402"},
		{Package{Manager: Opkg, Name: "x"}, "poky", "pkg:opkg/x"},
	}
	for _, tt := range tests {
		if got := PURL(tt.p, tt.os); got != tt.want {
			t.Errorf("PURL(%+v) = %s, want %s", tt.p, got, tt.want)
		}
	}
}

// TestGenerateReadsInsideRootfs checks that the package database and os-release are read as
// the device sees them (absolute links from the rootfs's root) and that links out of the
// rootfs, FIFOs, devices and oversized files are refused promptly, naming the file. ("purl:"
// is followed by text the document must hold.)
func TestGenerateReadsInsideRootfs(t *testing.T) {
	status, err := os.ReadFile("testdata/dpkg/var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "status"), []byte("Package: host-secret\nStatus: install ok installed\n"), 0o644)
	write := func(root, name, data string) {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(root, name, target string) {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	special := func(root, name string, mode uint32) {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.Remove(p)
		if err := syscall.Mknod(p, mode|0o644, 1<<8|5); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		root  bool // needs root (mknod of a device)
		setup func(root string)
		want  string // error text, or "purl:" and a purl prefix the document must hold
	}{
		{"absolute os-release link inside", false, func(root string) {
			write(root, "usr/lib/os-release", "ID=other\n")
			write(root, "usr/lib/os-release.d/custom", "ID=myos\n")
			link(root, "etc/os-release", "/usr/lib/os-release.d/custom")
		}, "purl:pkg:deb/myos/"},
		{"absolute database link inside", false, func(root string) {
			write(root, "var/lib/dpkg/status.real", string(status))
			link(root, "var/lib/dpkg/status", "/var/lib/dpkg/status.real")
		}, "purl:pkg:deb/debian/base-files"},
		{"database linked to a host file", false, func(root string) {
			// Inside the rootfs it does not exist: no database (and a warning), not the host's.
			link(root, "var/lib/dpkg/status", filepath.Join(host, "status"))
		}, `purl:"name": "pc-1"`},
		{"database linked out relatively", false, func(root string) {
			link(root, "var/lib/dpkg/status", "../../../../../../../../.."+filepath.Join(host, "status"))
		}, "climbs above the root"},
		{"database is a FIFO", false, func(root string) {
			special(root, "var/lib/dpkg/status", syscall.S_IFIFO)
		}, "var/lib/dpkg/status is a named pipe (FIFO)"},
		{"database is a character device", true, func(root string) {
			special(root, "var/lib/dpkg/status", syscall.S_IFCHR)
		}, "var/lib/dpkg/status is a character device"},
		{"os-release is a FIFO", false, func(root string) {
			special(root, "etc/os-release", syscall.S_IFIFO)
		}, "etc/os-release is a named pipe (FIFO)"},
		{"os-release linked to /dev/zero", true, func(root string) {
			special(root, "dev/zero", syscall.S_IFCHR)
			link(root, "etc/os-release", "/dev/zero")
		}, "etc/os-release (resolved to dev/zero) is a character device"},
		{"os-release oversized", false, func(root string) {
			write(root, "etc/os-release", "")
			os.Truncate(filepath.Join(root, "etc/os-release"), 24<<30)
		}, "etc/os-release is 25769803776 bytes, larger than the limit of 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testkit.NeedRoot(t, "creating device nodes", "this check did not run")
			}
			root := t.TempDir()
			write(root, "var/lib/dpkg/status", string(status))
			tt.setup(root)
			var doc []byte
			var err error
			done := make(chan struct{})
			go func() {
				defer close(done)
				doc, _, err = Generate(root, Options{System: "pc", Version: "1", Created: created})
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Generate did not return within 5 s (blocked on a FIFO or reading a device?)")
			}
			if strings.Contains(string(doc), "host-secret") {
				t.Fatal("the SBOM lists the build host's package")
			}
			if purl, ok := strings.CutPrefix(tt.want, "purl:"); ok {
				if err != nil || !strings.Contains(string(doc), purl) {
					t.Fatalf("err = %v; want a document with %q", err, purl)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
