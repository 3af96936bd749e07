//go:build linux

package main

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/agent/engine"
	"github.com/otabake/otabake/internal/bootenv"
)

func TestDefaultBootPart(t *testing.T) {
	env := func(part string) []byte {
		b, err := bootenv.EncodeGrubEnv([]bootenv.Var{{Name: varBootPart, Value: part}}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	other, err := bootenv.EncodeGrubEnv([]bootenv.Var{{Name: "unrelated", Value: "1"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	type file struct {
		block []byte
		sha1  string // "" = correct companion, "-" = missing, else literal content
	}
	tests := []struct {
		name               string
		primary, secondary *file
		want               string
		notes              int
	}{
		{"both agree", &file{env("3"), ""}, &file{env("3"), ""}, "3", 0},
		{"primary wins", &file{env("3"), ""}, &file{env("2"), ""}, "3", 0},
		{"bad primary sha1 falls back to secondary", &file{env("2"), fmt.Sprintf("%x  /rugpi/primary.grubenv", sha1.Sum(env("3")))}, &file{env("3"), ""}, "3", 1},
		{"missing primary sha1", &file{env("3"), "-"}, &file{env("2"), ""}, "2", 1},
		{"sha1 naming another file", &file{env("3"), fmt.Sprintf("%x  /rugpi/secondary.grubenv", sha1.Sum(env("3")))}, &file{env("2"), ""}, "2", 1},
		{"both bad: GRUB's built-in 2", &file{env("3"), "0000  /rugpi/primary.grubenv"}, &file{env("3"), "-"}, "2", 2},
		{"no files", nil, nil, "2", 2},
		{"primary without the variable keeps secondary's", &file{other, ""}, &file{env("3"), ""}, "3", 0},
		{"upper-case hex accepted", &file{env("3"), strings.ToUpper(fmt.Sprintf("%x", sha1.Sum(env("3")))) + "  /rugpi/primary.grubenv"}, nil, "3", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "rugpi"), 0o755); err != nil {
				t.Fatal(err)
			}
			for name, f := range map[string]*file{"primary.grubenv": tt.primary, "secondary.grubenv": tt.secondary} {
				if f == nil {
					continue
				}
				p := filepath.Join(dir, "rugpi", name)
				if err := os.WriteFile(p, f.block, 0o644); err != nil {
					t.Fatal(err)
				}
				sum := string(bootenv.GrubEnvSHA1(f.block, "/rugpi/"+name))
				switch f.sha1 {
				case "-":
					continue
				case "":
				default:
					sum = f.sha1
				}
				if err := os.WriteFile(p+".sha1", []byte(sum), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, notes := defaultBootPart(dir)
			if got != tt.want || len(notes) != tt.notes {
				t.Fatalf("got %s with notes %q, want %s with %d notes", got, notes, tt.want, tt.notes)
			}
		})
	}
}

func TestCommitWritesBothEnvironments(t *testing.T) {
	d := newDevice(t, 80<<20, true)
	d.bootFrom(t, partSystemB) // booted the spare after an update: a needs commit

	code, out, errs := d.run(t, "system", "info", "--json")
	if code != 0 {
		t.Fatalf("system info: %d %s", code, errs)
	}
	st, err := engine.ParseRugixSystemInfo([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if st != (engine.BootState{ActiveGroup: "b", DefaultGroup: "a", SpareGroup: "a", NeedsCommit: true}) {
		t.Fatalf("before commit: %+v", st)
	}

	if code, _, errs := d.run(t, "system", "commit"); code != 0 {
		t.Fatalf("system commit: %d %s", code, errs)
	}
	for _, name := range []string{"primary.grubenv", "secondary.grubenv"} {
		p := filepath.Join(d.config, "rugpi", name)
		if got := grubEditenvList(t, p); got != "rugpi_bootpart=3\n" {
			t.Errorf("grub-editenv %s list = %q", name, got)
		}
		block, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := os.ReadFile(p + ".sha1")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%x  /rugpi/%s", sha1.Sum(block), name); string(sum) != want || len(block) != 1024 {
			t.Errorf("%s.sha1 = %q (block %d bytes), want %q", name, sum, len(block), want)
		}
		if _, err := os.Stat(p + ".new"); !os.IsNotExist(err) {
			t.Errorf("%s.new left behind: %v", name, err)
		}
	}
	// sha1sum agrees once the ESP path is mapped to the directory.
	cmd := exec.Command("sh", "-c", "sed 's#/rugpi/#rugpi/#' rugpi/primary.grubenv.sha1 | sha1sum -c -")
	cmd.Dir = d.config
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha1sum -c: %v\n%s", err, out)
	}

	code, out, _ = d.run(t, "system", "info")
	if code != 0 {
		t.Fatal("system info after commit failed")
	}
	if st, err = engine.ParseRugixSystemInfo([]byte(out)); err != nil {
		t.Fatal(err)
	}
	if st != (engine.BootState{ActiveGroup: "b", DefaultGroup: "b", SpareGroup: "a"}) {
		t.Fatalf("after commit: %+v", st)
	}
	if code, _, errs := d.run(t, "system", "commit"); code != 0 || !strings.Contains(errs, "already the default") {
		t.Fatalf("second commit: %d %q", code, errs)
	}
}

func TestSystemInfoShape(t *testing.T) {
	d := newDevice(t, 80<<20, true)
	code, out, errs := d.run(t, "system", "info", "--json")
	if code != 0 {
		t.Fatalf("system info: %s", errs)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("--json must be one compact line: %v %q", err, out)
	}
	want := `{"slots":{"boot-a":{"active":true},"boot-b":{"active":false},"system-a":{"active":true},"system-b":{"active":false}},` +
		`"boot":{"bootFlow":"grub","activeGroup":"a","defaultGroup":"a","groups":{"a":{},"b":{}}},"state":{"status":"Active","dataPartition":"` + d.disk + `6"}}` + "\n"
	if out != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	st, err := engine.ParseRugixSystemInfo([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if st != (engine.BootState{ActiveGroup: "a", DefaultGroup: "a", SpareGroup: "b"}) {
		t.Fatalf("parsed %+v", st)
	}

	// root= naming an unknown partition is an error, not a guess.
	if err := os.WriteFile(d.cmdline, []byte("root=PARTUUID=00000000-0000-4000-8000-000000000000"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := d.run(t, "system", "info"); code != exitFailed || !strings.Contains(errs, "neither system partition") {
		t.Fatalf("unknown root: %d %q", code, errs)
	}
}

func TestSpareReboot(t *testing.T) {
	d := newDevice(t, 80<<20, true)
	code, _, errs := d.run(t, "system", "reboot", "--spare")
	// A disk image cannot be rebooted: the flag is written and the command fails honestly.
	if code != exitFailed || !strings.Contains(errs, "not rebooting") {
		t.Fatalf("reboot --spare: %d %q", code, errs)
	}
	if got := grubEditenvList(t, filepath.Join(d.config, "rugpi", "boot_spare.grubenv")); got != "rugpi_boot_spare=true\n" {
		t.Fatalf("boot_spare.grubenv: %q", got)
	}
	if _, err := os.Stat(filepath.Join(d.config, "rugpi", "boot_spare.grubenv.sha1")); !os.IsNotExist(err) {
		t.Fatalf("boot_spare.grubenv must have no .sha1: %v", err)
	}
}

func TestCommandLine(t *testing.T) {
	d := newDevice(t, 80<<20, true)
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"--version"}, 0, version + "\n", ""},
		{[]string{"frobnicate"}, exitUsage, "", "unknown command \"frobnicate\""},
		{nil, exitUsage, "", "unknown command"},
		{[]string{"system", "info", "--yaml"}, exitUsage, "", "unknown argument"},
		{[]string{"system", "reboot", "--now"}, exitUsage, "", "unknown argument"},
		{[]string{"update", "install"}, exitUsage, "", "no bundle given"},
		{[]string{"update", "install", "--bundle-hash"}, exitUsage, "", "needs a value"},
		{[]string{"update", "install", "--check-hash", "x", "b.rugixb"}, exitUsage, "", "unknown flag --check-hash"},
		{[]string{"update", "install", "b.rugixb"}, exitFailed, "", "install refused: open bundle b.rugixb"},
		{[]string{"update", "install", "--reboot", "later", "--bundle-hash", "x", "b.rugixb"}, exitFailed, "", "want yes, no, set or deferred"},
		// 0.8's flag names are unknown to 1.x.
		{[]string{"update", "install", "--verify-bundle", "x", "b.rugixb"}, exitUsage, "", "unknown flag --verify-bundle"},
		{[]string{"update", "install", "--verify-signature", "b.rugixb"}, exitUsage, "", "unknown flag --verify-signature"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := d.run(t, tt.args...)
			if code != tt.code || (tt.stdout != "" && out != tt.stdout) || !strings.Contains(errs, tt.stderr) {
				t.Fatalf("got %d %q %q", code, out, errs)
			}
			if tt.code != 0 && strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Errorf("error is not one line: %q", errs)
			}
		})
	}
}

func TestParseInstallArgs(t *testing.T) {
	tests := []struct {
		args []string
		want installOptions
	}{
		{[]string{"--bundle-hash", "sha512-256:ab", "--reboot", "no", "http://h/b"},
			installOptions{Source: "http://h/b", BundleHash: "sha512-256:ab", Reboot: "no"}},
		{[]string{"/tmp/b", "--bundle-hash=h", "--root-cert", "/etc/ca.pem", "--insecure-allow-missing-block-index", "--skip-compatibility-check"},
			installOptions{Source: "/tmp/b", BundleHash: "h", RootCert: "/etc/ca.pem", AllowMissingBlockIndex: true, SkipCompatibilityCheck: true}},
		{[]string{"--insecure-skip-bundle-verification", "--reboot=set", "b"},
			installOptions{Source: "b", SkipVerification: true, Reboot: "set"}},
		// otabake-agent's form: every option, then "--", then the URL.
		{[]string{"--bundle-hash", "sha512-256:ab", "--reboot", "no", "--", "http://h/b"},
			installOptions{Source: "http://h/b", BundleHash: "sha512-256:ab", Reboot: "no"}},
		{[]string{"--", "--reboot"}, installOptions{Source: "--reboot"}},
	}
	for _, tt := range tests {
		got, err := parseInstallArgs(tt.args)
		if err != nil || got != tt.want {
			t.Errorf("parseInstallArgs(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
	for _, args := range [][]string{{"--", "a", "b"}, {"--reboot", "no", "--"}} {
		if _, err := parseInstallArgs(args); err == nil {
			t.Errorf("parseInstallArgs(%q): no error", args)
		}
	}
}
