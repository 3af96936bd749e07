//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/e2e/vmkit"
	"github.com/otabake/otabake/internal/sign"
	"github.com/otabake/otabake/internal/testkit"
)

// signBundle signs the bundle at in with ca's signer and writes it to out.
func signBundle(t *testing.T, ca *vmkit.TestCA, in, out string) {
	t.Helper()
	s, err := sign.LoadSigner(context.Background(), ca.Key, ca.Cert, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.Sign(context.Background(), in, out, s); err != nil {
		t.Fatal(err)
	}
}

// TestInstallVerification: the Rugix Ctrl 1.x rules, each case naming its upstream source in
// verify.go. A refused bundle leaves the spare group untouched.
func TestInstallVerification(t *testing.T) {
	testkit.NeedTool(t, "debugfs", "e2fsprogs")
	dir := t.TempDir()
	trusted, err := vmkit.WriteTestCA(filepath.Join(dir, "pki"), "trusted")
	if err != nil {
		t.Fatal(err)
	}
	other, err := vmkit.WriteTestCA(filepath.Join(dir, "pki"), "other")
	if err != nil {
		t.Fatal(err)
	}
	bootImg, sysImg := payloadImages(t, dir)
	unsigned, res := makeBundle(t, dir, bootImg, sysImg)
	signed := filepath.Join(dir, "signed.rugixb")
	signBundle(t, trusted, unsigned, signed)
	untrusted := filepath.Join(dir, "untrusted.rugixb")
	signBundle(t, other, unsigned, untrusted)

	// A bundle without a block index on its system payload, signed by the trusted CA.
	noIndex := filepath.Join(dir, "noindex.rugixb")
	resNoIndex, err := bundle.Create(context.Background(), noIndex+".unsigned", bundle.Spec{Payloads: []bundle.Payload{
		{Slot: "boot", Path: bootImg, BlockEncoding: &bundle.BlockEncoding{Chunker: "casync-64", Deduplicate: true}},
		{Slot: "system", Path: sysImg},
	}}, bundle.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	signBundle(t, trusted, noIndex+".unsigned", noIndex)

	ctrlTOML := "[signatures]\nroots = [\"" + trusted.Root + "\"]\n"
	tests := []struct {
		name  string
		ctrl  string // ctrl.toml; "" for none
		args  []string
		want  string // "" for success, else the last stderr line must contain it
		clean bool   // a refusal that must leave every spare partition unwritten
	}{
		{"signed by a configured root", ctrlTOML, []string{signed}, "", false},
		{"signed by another CA", ctrlTOML, []string{untrusted}, "install refused: " + msgVerificationFailed, true},
		{"unsigned", ctrlTOML, []string{unsigned}, "install refused: " + msgVerificationFailed, true},
		{"no roots configured", "", []string{signed}, "install refused: " + msgVerificationFailed, true},
		{"empty roots", "[signatures]\nroots = []\n", []string{signed}, "install refused: " + msgVerificationFailed, true},
		{"unreadable root", "[signatures]\nroots = [\"/nonexistent.crt\"]\n", []string{signed}, "install refused: " + msgVerificationFailed, true},
		{"second root accepts", "[signatures]\nroots = [\"/nonexistent.crt\", \"" + other.Root + "\", \"" + trusted.Root + "\"]\n", []string{signed}, "", false},
		{"--root-cert replaces the configured roots", ctrlTOML, []string{"--root-cert", other.Root, signed}, "install refused: " + msgVerificationFailed, true},
		{"--root-cert of the other CA", ctrlTOML, []string{"--root-cert", other.Root, untrusted}, "", false},
		{"--bundle-hash verifies an untrusted signature", ctrlTOML, []string{"--bundle-hash", res.Hash, untrusted}, "", false},
		{"--bundle-hash verifies an unsigned bundle", "", []string{"--bundle-hash", res.Hash, unsigned}, "", false},
		{"a wrong --bundle-hash is refused despite a valid signature", ctrlTOML, []string{"--bundle-hash", "sha512-256:" + strings.Repeat("ab", 32), signed}, "install refused: " + msgInvalidHeaderHash, true},
		{"--insecure-skip-bundle-verification", "", []string{"--insecure-skip-bundle-verification", untrusted}, "", false},
		{"no block index", ctrlTOML, []string{noIndex}, "install refused: payload 1 does not have a block index, refusing to install", false},
		{"no block index, hash-verified", "", []string{"--bundle-hash", resNoIndex.Hash, noIndex}, "payload 1 does not have a block index", false},
		{"--insecure-allow-missing-block-index", ctrlTOML, []string{"--insecure-allow-missing-block-index", noIndex}, "", false},
		{"malformed ctrl.toml", "[signatures\n", []string{signed}, "unable to parse configuration file", true},
		{"[signatures] without roots", "[signatures]\n", []string{signed}, "missing field `roots`", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDevice(t, 80<<20, true)
			if tt.ctrl != "" {
				if err := os.WriteFile(d.ctrl, []byte(tt.ctrl), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, _, errs := d.run(t, append([]string{"update", "install", "--reboot", "no"}, tt.args...)...)
			last := errs[strings.LastIndex(strings.TrimSuffix(errs, "\n"), "\n")+1:]
			if tt.want == "" {
				if code != 0 {
					t.Fatalf("exit %d, want success\n%s", code, errs)
				}
				return
			}
			if code != exitFailed || !strings.Contains(last, tt.want) {
				t.Fatalf("exit %d, last line %q; want 1 and %q\n%s", code, last, tt.want, errs)
			}
			t.Log(strings.TrimSpace(last))
			if tt.clean {
				tab := d.table(t)
				for _, n := range []int{partBootB, partSystemB} {
					p, _ := tab.Partition(n)
					if got := d.readDisk(t, p.Offset(), p.Bytes()); !bytes.Equal(got, make([]byte, p.Bytes())) {
						t.Errorf("partition %d written although the bundle was refused before any payload", n)
					}
				}
			}
			// The device keeps booting its committed group either way. (A malformed ctrl.toml
			// fails every command, system info too, so it goes first.)
			os.Remove(d.ctrl)
			if code, out, _ := d.run(t, "system", "info", "--json"); code != 0 || !strings.Contains(out, `"defaultGroup":"a"`) || !strings.Contains(out, `"activeGroup":"a"`) {
				t.Errorf("after the refusal: %s", out)
			}
			if _, err := os.Stat(filepath.Join(d.config, "rugpi", "boot_spare.grubenv")); err == nil {
				if b, _ := os.ReadFile(filepath.Join(d.config, "rugpi", "boot_spare.grubenv")); bytes.Contains(b, []byte("rugpi_boot_spare=true")) {
					t.Error("a refused install set the spare boot flag")
				}
			}
		})
	}
}

// TestInstallNeedsCommit: an uncommitted system (booted into the spare group) takes no update.
func TestInstallNeedsCommit(t *testing.T) {
	d := newDevice(t, 80<<20, true)
	d.bootFrom(t, partSystemB)
	code, _, errs := d.run(t, "update", "install", "--insecure-skip-bundle-verification", "--reboot", "no", filepath.Join(d.dir, "missing.rugixb"))
	if code != exitFailed || !strings.Contains(errs, "install refused: "+msgNeedsCommit) {
		t.Fatalf("exit %d: %s", code, errs)
	}
}
