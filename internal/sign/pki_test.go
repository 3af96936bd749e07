package sign

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/otabake/otabake/internal/testkit"
)

// The test PKI is made by the openssl tool, the oracle Rugix Ctrl 0.8 uses
// on devices, so our loader and verifier meet certificates exactly as users
// make them (the generate-test-keys.sh style of the Rugix tests).

// openssl runs the openssl tool in dir and fails the test on error.
func openssl(t testing.TB, dir string, args ...string) []byte {
	t.Helper()
	out, err := opensslErr(dir, nil, args...)
	if err != nil {
		t.Fatalf("openssl %v: %v", args, err)
	}
	return out
}

// opensslErr runs the openssl tool and returns its stdout, or an error with
// its stderr.
func opensslErr(dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &cmdError{err: err, stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

type cmdError struct {
	err    error
	stderr string
}

func (e *cmdError) Error() string { return e.err.Error() + ": " + e.stderr }

const extConf = `
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[leaf_cs]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[leaf_cs_email]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = codeSigning,emailProtection

[leaf_noeku]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature

[leaf_server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth

[leaf_nodigsig]
basicConstraints = CA:FALSE
keyUsage = critical,keyEncipherment
`

// pki is a directory of openssl-made keys and certificates:
// root.{key,pem}, other-root.{key,pem}, inter.{key,pem} (signed by root) and
// leaves signed by inter, named <profile>-<keytype>.{key,pem}.
type pki struct{ dir string }

func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

var (
	pkiOnce sync.Once
	pkiDir  string
	pkiErr  error
)

// testPKI builds the PKI once per test binary: key generation is the slow
// part (RSA), and every test only reads the files.
func testPKI(t testing.TB) pki {
	t.Helper()
	testkit.NeedTool(t, "openssl", "openssl", "the CMS oracle tests did not run")
	pkiOnce.Do(func() {
		pkiDir, pkiErr = os.MkdirTemp("", "otabake-sign-pki-")
		if pkiErr != nil {
			return
		}
		pkiErr = buildPKI(pkiDir)
	})
	if pkiErr != nil {
		t.Fatalf("build test PKI: %v", pkiErr)
	}
	return pki{pkiDir}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pkiDir != "" {
		os.RemoveAll(pkiDir)
	}
	os.Exit(code)
}

func buildPKI(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "ext.cnf"), []byte(extConf), 0o644); err != nil {
		return err
	}
	run := func(args ...string) error {
		_, err := opensslErr(dir, nil, args...)
		return err
	}
	genKey := func(name, kind string) error {
		switch kind {
		case "rsa":
			return run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", name+".key")
		case "p384":
			return run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", name+".key")
		default:
			return run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name+".key")
		}
	}
	// issue makes name.pem for name.key, signed by issuer (self-signed if
	// issuer is empty), with the extensions of section ext.
	issue := func(name, cn, issuer, ext string) error {
		if err := run("req", "-new", "-key", name+".key", "-subj", "/CN="+cn, "-out", name+".csr"); err != nil {
			return err
		}
		args := []string{"x509", "-req", "-in", name + ".csr", "-days", "36500", "-sha256",
			"-extfile", "ext.cnf", "-extensions", ext, "-out", name + ".pem"}
		if issuer == "" {
			args = append(args, "-signkey", name+".key")
		} else {
			args = append(args, "-CA", issuer+".pem", "-CAkey", issuer+".key", "-CAcreateserial")
		}
		return run(args...)
	}
	steps := []struct{ name, cn, kind, issuer, ext string }{
		{"root", "otabake test root", "p256", "", "root"},
		{"other-root", "otabake other root", "p256", "", "root"},
		{"inter", "otabake test intermediate", "p256", "root", "inter"},
		{"cs-p256", "signer codeSigning p256", "p256", "inter", "leaf_cs"},
		{"cs-rsa", "signer codeSigning rsa", "rsa", "inter", "leaf_cs"},
		{"cs-p384", "signer codeSigning p384", "p384", "inter", "leaf_cs"},
		{"csemail-p256", "signer codeSigning and email p256", "p256", "inter", "leaf_cs_email"},
		{"noeku-p256", "signer no EKU p256", "p256", "inter", "leaf_noeku"},
		{"noeku-rsa", "signer no EKU rsa", "rsa", "inter", "leaf_noeku"},
		{"server-p256", "signer serverAuth p256", "p256", "inter", "leaf_server"},
		{"nodigsig-p256", "signer keyEncipherment p256", "p256", "inter", "leaf_nodigsig"},
	}
	for _, s := range steps {
		if err := genKey(s.name, s.kind); err != nil {
			return err
		}
		if err := issue(s.name, s.cn, s.issuer, s.ext); err != nil {
			return err
		}
	}
	return nil
}
