package bundle

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/sign"
	"github.com/otabake/otabake/internal/testkit"
)

// TestRealRugixBundler compares otabake with a real rugix-bundler binary named by
// OTABAKE_RUGIX_BUNDLER (built from silitics/rugix, never committed) on a small generated ext4
// image: `bundle create` must give byte-identical bundles without compression and the same
// bundle hash with xz, for casync-16, casync-64 and fixed-64; rugix-bundler must inspect,
// verify and extract otabake's signed bundles, and otabake must read and verify
// rugix-bundler's.
func TestRealRugixBundler(t *testing.T) {
	rb := os.Getenv("OTABAKE_RUGIX_BUNDLER")
	if rb == "" {
		t.Skip("SKIPPING the comparison with the real rugix-bundler: set OTABAKE_RUGIX_BUNDLER=/path/to/rugix-bundler")
	}
	mkfs := testkit.NeedTools(t, "the comparison with the real rugix-bundler did not run",
		testkit.Tool{Name: "mkfs.ext4", Package: "e2fsprogs"}, testkit.Tool{Name: "openssl", Package: "openssl"})[0]
	ctx := context.Background()
	w := t.TempDir()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = w
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	rbHash := func(path string) string { return strings.TrimSpace(run(rb, "--log-level", "off", "hash", path)) }

	// A small ext4 image of a generated tree: random runs, text, zeros and repeated files.
	tree := filepath.Join(w, "tree")
	for i := range 12 {
		d := filepath.Join(tree, fmt.Sprintf("d%d", i%3))
		os.MkdirAll(d, 0o755)
		writeFileF(t, filepath.Join(d, fmt.Sprintf("f%d", i)), testData(300<<10+i*4099, uint64(i%5)))
	}
	img := filepath.Join(w, "rootfs.ext4")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 16<<20)
	run(mkfs, "-q", "-F", "-d", tree, "-U", "2f3c4e5a-1111-2222-3333-444455556666", "-E", "root_owner=0:0", img)

	bundles := map[string][2]string{} // name → otabake's, rugix-bundler's
	for _, chunker := range []string{"casync-16", "casync-64", "fixed-64"} {
		for _, compression := range []string{"", "xz"} {
			name := chunker
			if compression != "" {
				name += "-" + compression
			}
			t.Run("create/"+name, func(t *testing.T) {
				dir := filepath.Join(w, "dir-"+name)
				os.MkdirAll(filepath.Join(dir, "payloads"), 0o755)
				writeFileF(t, filepath.Join(dir, "payloads", "system.img"), readFileF(t, img))
				toml := "update-type = \"full\"\n\n[[payloads]]\nfilename = \"system.img\"\n[payloads.delivery]\ntype = \"slot\"\nslot = \"system\"\n" +
					"[payloads.block-encoding]\nchunker = \"" + chunker + "\"\nhash-algorithm = \"sha512-256\"\ndeduplicate = true\n"
				if compression != "" {
					toml += "compression = { type = \"xz\" }\n"
				}
				writeFileF(t, filepath.Join(dir, ManifestFile), []byte(toml))
				ours, theirs := filepath.Join(w, name+".otabake.rugixb"), filepath.Join(w, name+".rugix.rugixb")
				run(rb, "--log-level", "off", "bundle", dir, theirs)
				res, _, err := CreateFromDirWith(ctx, dir, ours, DirOptions{}, CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				bundles[name] = [2]string{ours, theirs}
				if h := rbHash(theirs); h != res.Hash || rbHash(ours) != res.Hash {
					t.Fatalf("bundle hash: rugix-bundler %s, otabake %s", h, res.Hash)
				}
				same := bytes.Equal(readFileF(t, ours), readFileF(t, theirs))
				if compression == "" && !same {
					t.Fatalf("uncompressed bundles differ: %s %s", ours, theirs)
				}
				t.Logf("%s: hash %s, bytes identical: %t", name, res.Hash, same)
			})
		}
	}

	// The block encoding bundle create adds to a manifest without one is what rugix-bundler
	// writes when the manifest says chunker = "casync-64".
	t.Run("default block index", func(t *testing.T) {
		dir, rdir := filepath.Join(w, "dir-default"), filepath.Join(w, "dir-default-rugix")
		toml := "update-type = \"full\"\n\n[[payloads]]\nfilename = \"system.img\"\n[payloads.delivery]\ntype = \"slot\"\nslot = \"system\"\n"
		for d, m := range map[string]string{dir: toml, rdir: toml + "[payloads.block-encoding]\nchunker = \"casync-64\"\n"} {
			os.MkdirAll(filepath.Join(d, "payloads"), 0o755)
			writeFileF(t, filepath.Join(d, "payloads", "system.img"), readFileF(t, img))
			writeFileF(t, filepath.Join(d, ManifestFile), []byte(m))
		}
		ours, theirs := filepath.Join(w, "default.otabake.rugixb"), filepath.Join(w, "default.rugix.rugixb")
		run(rb, "--log-level", "off", "bundle", rdir, theirs)
		if _, warnings, err := CreateFromDirWith(ctx, dir, ours, DirOptions{}, CreateOptions{}); err != nil || len(warnings) != 1 {
			t.Fatalf("create: %v, warnings %q", err, warnings)
		}
		if !bytes.Equal(readFileF(t, ours), readFileF(t, theirs)) {
			t.Fatalf("otabake's default block index differs from rugix-bundler's casync-64 bundle: %s %s", ours, theirs)
		}
	})

	t.Run("signatures", func(t *testing.T) {
		pair, ok := bundles["casync-64-xz"]
		if !ok {
			t.Skip("no casync-64-xz bundles")
		}
		ours, theirs := pair[0], pair[1]
		writeFileF(t, filepath.Join(w, "signer.ext"), []byte("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"))
		run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
			"-days", "2", "-subj", "/CN=otabake test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
		run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "signer.key", "-out", "signer.csr", "-subj", "/CN=otabake test signer")
		run("openssl", "x509", "-req", "-in", "signer.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "signer.pem", "-days", "2", "-extfile", "signer.ext")
		s, err := sign.LoadSigner(ctx, filepath.Join(w, "signer.key"), filepath.Join(w, "signer.pem"), nil, "")
		if err != nil {
			t.Fatal(err)
		}
		roots, err := sign.LoadCertPool(filepath.Join(w, "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}

		// otabake signs, rugix-bundler reads, verifies and extracts.
		oursSigned := filepath.Join(w, "otabake-signed.rugixb")
		if err := Sign(ctx, ours, oursSigned, s); err != nil {
			t.Fatal(err)
		}
		b, err := Open(oursSigned)
		if err != nil {
			t.Fatal(err)
		}
		h := b.Hash()
		b.Close()
		if out := run(rb, "--log-level", "off", "inspect", "--verify-bundle", h, oursSigned); !strings.Contains(out, `slot="system"`) {
			t.Fatalf("rugix-bundler inspect:\n%s", out)
		}
		if out := run(rb, "--log-level", "off", "signatures", "list", oursSigned); !strings.Contains(out, "CMS Signature 0") {
			t.Fatalf("rugix-bundler signatures list:\n%s", out)
		}
		run(rb, "--log-level", "off", "signatures", "verify", oursSigned, filepath.Join(w, "ca.pem"))
		run(rb, "--log-level", "off", "extract", "--verify-bundle", h, oursSigned, "0", filepath.Join(w, "extracted.img"))
		if !bytes.Equal(readFileF(t, filepath.Join(w, "extracted.img")), readFileF(t, img)) {
			t.Fatal("rugix-bundler extract of otabake's signed bundle differs from the image")
		}

		// rugix-bundler signs, otabake reads and verifies.
		theirsSigned := filepath.Join(w, "rugix-signed.rugixb")
		run(rb, "--log-level", "off", "signatures", "sign", theirs, filepath.Join(w, "signer.pem"), filepath.Join(w, "signer.key"), theirsSigned)
		b, err = Open(theirsSigned)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		rep, err := b.Verify(ctx, VerifyOptions{BundleHash: h, Roots: roots})
		if err != nil {
			t.Fatalf("otabake verify of rugix-bundler's signed bundle: %v", err)
		}
		if len(rep.Signatures) != 1 || !rep.Signatures[0].Verified || len(rep.Warnings) != 0 {
			t.Fatalf("verify report %+v", rep)
		}
		// Both signed the same header: the signed bundles differ only in their signatures.
		if b.Hash() != h {
			t.Fatalf("rugix-bundler's signed bundle has hash %s, otabake's %s", b.Hash(), h)
		}
	})
}
