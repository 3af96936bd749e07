package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/testkit"
)

func TestParseRugixSystemInfo(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    BootState
		wantErr string
	}{
		{
			name: "committed",
			in:   `{"slots":{"system-a":{"active":true},"system-b":{"active":false}},"boot":{"bootFlow":"grub","activeGroup":"a","defaultGroup":"a","groups":{"a":{},"b":{}}},"state":{"status":"Active"}}`,
			want: BootState{ActiveGroup: "a", DefaultGroup: "a", SpareGroup: "b"},
		},
		{
			name: "on trial with slot db",
			in: `{"slots":{"system-a":{"active":false,"updatedAt":"2026-01-01T12:00:00.123456789Z","size":1},"system-b":{"active":true}},
			      "boot":{"bootFlow":"rpi-tryboot","activeGroup":"b","defaultGroup":"a","groups":{"a":{},"b":{}}}}`,
			want: BootState{ActiveGroup: "b", DefaultGroup: "a", SpareGroup: "a", NeedsCommit: true,
				SpareUpdatedAt: time.Date(2026, 1, 1, 12, 0, 0, 123456789, time.UTC)},
		},
		{
			name: "no groups listed (0.8)",
			in:   `{"boot":{"activeGroup":"b","defaultGroup":"b"}}`,
			want: BootState{ActiveGroup: "b", DefaultGroup: "b", SpareGroup: "a"},
		},
		{name: "no boot", in: `{"slots":{}}`, wantErr: "no boot section"},
		{name: "no active", in: `{"boot":{"defaultGroup":"a"}}`, wantErr: "activeGroup missing"},
		{name: "not json", in: `Boot Flow: grub`, wantErr: "parse rugix-ctrl system info"},
		{name: "empty", in: ``, wantErr: "parse rugix-ctrl system info"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRugixSystemInfo([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.SpareUpdatedAt.Equal(tc.want.SpareUpdatedAt) {
				t.Errorf("SpareUpdatedAt %v, want %v", got.SpareUpdatedAt, tc.want.SpareUpdatedAt)
			}
			got.SpareUpdatedAt, tc.want.SpareUpdatedAt = time.Time{}, time.Time{}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseRaucStatus(t *testing.T) {
	const trial = `{"compatible":"x","booted":"B","boot_primary":"rootfs.1","slots":[
	  {"rootfs.0":{"class":"rootfs","state":"inactive","bootname":"A","boot_status":"good","slot_status":{"installed":{"timestamp":"2026-03-01T10:00:00Z"}}}},
	  {"rootfs.1":{"class":"rootfs","state":"booted","bootname":"B","boot_status":"bad"}},
	  {"appfs.0":{"class":"appfs","state":"inactive"}}]}`
	got, err := ParseRaucStatus([]byte(trial))
	if err != nil {
		t.Fatal(err)
	}
	want := BootState{ActiveGroup: "B", DefaultGroup: "B", SpareGroup: "A", NeedsCommit: true,
		SpareUpdatedAt: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{`{}`, `{"booted":"C","slots":[{"rootfs.0":{"bootname":"A"}}]}`, `[`} {
		if _, err := ParseRaucStatus([]byte(bad)); err == nil {
			t.Errorf("ParseRaucStatus(%s): no error", bad)
		}
	}
}

func TestParseRugixVersion(t *testing.T) {
	for in, want := range map[string]int{"rugix-ctrl 0.8.15\n": 0, "rugix-ctrl 1.2.0": 1, "rugix-ctrl v1.3": 1} {
		if got, err := ParseRugixVersion([]byte(in)); err != nil || got != want {
			t.Errorf("ParseRugixVersion(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := ParseRugixVersion([]byte("rugix-ctrl")); err == nil {
		t.Error("no error without a version")
	}
}

// fakeRunner records command lines and answers from a table.
type fakeRunner struct {
	calls   [][]string
	answers map[string]string
	fail    map[string]error
}

func (f *fakeRunner) run(_ context.Context, name string, args ...string) ([]byte, error) {
	cl := append([]string{name}, args...)
	f.calls = append(f.calls, cl)
	key := strings.Join(cl, " ")
	for prefix, err := range f.fail {
		if strings.HasPrefix(key, prefix) {
			return nil, err
		}
	}
	return []byte(f.answers[key]), nil
}

// testHash is a well-formed Rugix bundle hash.
const testHash = "sha512-256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestRugixInstallFlags(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    []string
	}{
		{"rugix-ctrl 0.8.15", []string{"rugix-ctrl", "update", "install", "--verify-bundle", testHash, "--reboot", "no", "--", "http://u"}},
		{"rugix-ctrl 1.1.0", []string{"rugix-ctrl", "update", "install", "--bundle-hash", testHash, "--reboot", "no", "--", "http://u"}},
	} {
		f := &fakeRunner{answers: map[string]string{"rugix-ctrl --version": tc.version}}
		e, _ := New("rugix", f.run)
		if err := e.Install(context.Background(), "http://u", InstallOptions{BundleHash: testHash}); err != nil {
			t.Fatal(err)
		}
		if got := f.calls[len(f.calls)-1]; !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.version, got, tc.want)
		}
	}
	f := &fakeRunner{}
	e, _ := New("rugix", f.run)
	_ = e.Install(context.Background(), "http://u", InstallOptions{})
	if len(f.calls) != 1 || slices.Contains(f.calls[0], "--version") {
		t.Errorf("without a hash the version must not matter: %q", f.calls)
	}
}

// TestInstallArgv checks the exact command lines: every option before "--", the URL from the
// Hub after it, for both tools, and the dry-run description alike.
func TestInstallArgv(t *testing.T) {
	const u = "https://s3.example/b/sys.rugixb?X-Amz-Signature=abc"
	for _, tc := range []struct {
		engine string
		opts   InstallOptions
		want   []string
	}{
		{"rugix", InstallOptions{}, []string{"rugix-ctrl", "update", "install", "--reboot", "no", "--", u}},
		{"rugix", InstallOptions{BundleHash: testHash}, []string{"rugix-ctrl", "update", "install", "--bundle-hash", testHash, "--reboot", "no", "--", u}},
		{"rauc", InstallOptions{}, []string{"rauc", "install", "--", u}},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			f := &fakeRunner{answers: map[string]string{"rugix-ctrl --version": "rugix-ctrl 1.2.0"}}
			e, _ := New(tc.engine, f.run)
			if err := e.Install(context.Background(), u, tc.opts); err != nil {
				t.Fatal(err)
			}
			got := f.calls[len(f.calls)-1]
			if !slices.Equal(got, tc.want) {
				t.Errorf("install argv %q, want %q", got, tc.want)
			}
			desc, err := e.DescribeInstall(context.Background(), u, tc.opts)
			if err != nil || !slices.Equal(desc, tc.want) {
				t.Errorf("DescribeInstall = %q, %v; want %q", desc, err, tc.want)
			}
			if i := slices.Index(got, "--"); i != len(got)-2 {
				t.Errorf("\"--\" at %d of %q: options must all come before it and only the URL after", i, got)
			}
		})
	}
}

// TestInstallRefusesHubValues: URLs and hashes the Hub should never send are refused before
// the tool runs.
func TestInstallRefusesHubValues(t *testing.T) {
	for _, tc := range []struct {
		name, url, hash, want string
	}{
		{"file URL", "file:///data/evil.rugixb", "", `scheme "file"`},
		{"ftp URL", "ftp://example.com/b.rugixb", "", `scheme "ftp"`},
		{"relative path", "/tmp/b.rugixb", "", `scheme ""`},
		{"option-like URL", "--insecure-skip-bundle-verification", "", "starts with '-'"},
		{"dash URL", "-https://example.com/b", "", "starts with '-'"},
		{"empty URL", "", "", "empty bundle URL"},
		{"whitespace", "https://example.com/a b", "", "whitespace"},
		{"newline", "https://example.com/a\n--reboot", "", "control characters"},
		{"no host", "https:///b.rugixb", "", "no host"},
		{"short hash", "https://example.com/b", testHash[:len(testHash)-1], "needs 64 hex digits, got 63"},
		{"long hash", "https://example.com/b", testHash + "00", "needs 64 hex digits, got 66"},
		{"hash not hex", "https://example.com/b", testHash[:len(testHash)-1] + "g", "not hexadecimal"},
		{"hash without algorithm", "https://example.com/b", testHash[len("sha512-256:"):], "want <algorithm>:<hex>"},
		{"hash unknown algorithm", "https://example.com/b", "md5:0123456789abcdef0123456789abcdef", `unknown algorithm "md5"`},
		{"hash option", "https://example.com/b", "--reboot=yes", "want <algorithm>:<hex>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{"rugix", "rauc"} {
				if name == "rauc" && tc.hash != "" {
					continue // RAUC refuses every hash anyway
				}
				f := &fakeRunner{answers: map[string]string{"rugix-ctrl --version": "rugix-ctrl 1.2.0"}}
				e, _ := New(name, f.run)
				err := e.Install(context.Background(), tc.url, InstallOptions{BundleHash: tc.hash})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: err = %v, want %q", name, err, tc.want)
				}
				for _, c := range f.calls {
					if slices.Contains(c, "install") {
						t.Errorf("%s: the tool ran: %q", name, c)
					}
				}
			}
		})
	}
}

func TestCheckBundleURLPolicy(t *testing.T) {
	for _, tc := range []struct {
		url       string
		allowHTTP bool
		want      string // "" accepts
	}{
		{"https://s3.eu.example/bucket/a?X-Amz-Signature=s", false, ""},
		{"http://127.0.0.1:8080/api/v1/blobs/x?sig=s", true, ""},
		{"http://s3.example/b?X-Amz-Signature=SECRET", false, "plain http but the Hub is not reached over http"},
		{"HTTPS://EXAMPLE.COM/b", false, ""},
		{"file:///b", true, "only http or https"},
		{"data:text/plain,x", true, `scheme "data"`},
	} {
		err := CheckBundleURL(tc.url, SourcePolicy{AllowHTTP: tc.allowHTTP})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s (http %v): %v", tc.url, tc.allowHTTP, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s (http %v): err = %v, want %q", tc.url, tc.allowHTTP, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "SECRET"):
			t.Errorf("the refusal leaks the presigned query: %v", err)
		}
	}
}

func TestCheckBundleHash(t *testing.T) {
	digits := testHash[len("sha512-256:"):]
	for _, tc := range []struct {
		hash, want string // want "" accepts
	}{
		{testHash, ""},
		{"sha512-256:" + strings.ToUpper(digits), ""},
		{"sha512_256:" + digits, ""},
		{"sha256:" + digits, ""},
		{"sha512:" + digits + digits, ""},
		{"sha512:" + digits, "needs 128 hex digits, got 64"},
		{"sha512-256:", "needs 64 hex digits, got 0"},
		{"", "want <algorithm>:<hex>"},
	} {
		err := CheckBundleHash(tc.hash)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckBundleHash(%q) = %v, want %q", tc.hash, err, tc.want)
		}
	}
}

func TestErrorsQuoteStderr(t *testing.T) {
	testkit.NeedTool(t, "sh", "dash")
	_, err := Exec(context.Background(), "sh", "-c", "echo first >&2; echo 'the real reason' >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "the real reason") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("err = %v", err)
	}
	_, err = Exec(context.Background(), "rugix-ctrl-does-not-exist")
	if err == nil || !strings.Contains(err.Error(), "rugix-ctrl-does-not-exist not found in PATH") {
		t.Errorf("err = %v", err)
	}
	f := &fakeRunner{fail: map[string]error{"rugix-ctrl system commit": errors.New("hook failed: boom")}}
	e, _ := New("rugix", f.run)
	if err := e.Commit(context.Background()); err == nil || !strings.Contains(err.Error(), "rugix-ctrl system commit failed: hook failed: boom") {
		t.Errorf("commit err = %v", err)
	}
	if _, err := New("swupdate", nil); !errors.Is(err, ErrUnknownEngine) {
		t.Errorf("New(swupdate) = %v", err)
	}
}

func TestRedact(t *testing.T) {
	in := `install --reboot no http://127.0.0.1:1/api/v1/blobs/repo_a_x?exp=1&sig=SECRET: Error: fetching "https://s3.example/b?X-Amz-Signature=SECRET" failed`
	got := Redact(in)
	if strings.Contains(got, "SECRET") || !strings.Contains(got, "http://127.0.0.1:1/api/v1/blobs/repo_a_x?<redacted>") {
		t.Errorf("Redact = %q", got)
	}
}

func TestPlainText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain\n", "plain"},
		// What rugix-ctrl 0.8.15 writes to a pipe while installing (seen in the QEMU test).
		{"\x1b[2K INFO installing update to boot group \"a\"\n\r\x1b[2K\r\x1b[2K INFO running hooks\n\r\x1b[2Kunable to decode payload\n", `INFO installing update to boot group "a" | INFO running hooks | unable to decode payload`},
		{"bell\x07 and \x1b]0;title\x07 null\x00 c1\u0085 kept: ä", "bell and 0;title null c1 kept: ä"},
	}
	for _, tt := range tests {
		if got := lastLines(strings.TrimSpace(plainText(tt.in)), 5); got != tt.want {
			t.Errorf("plainText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
