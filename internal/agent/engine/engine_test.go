package engine

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
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

func TestRugixInstallFlags(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    []string
	}{
		{"rugix-ctrl 0.8.15", []string{"rugix-ctrl", "update", "install", "--verify-bundle", "sha512-256:ab", "--reboot", "no", "http://u"}},
		{"rugix-ctrl 1.1.0", []string{"rugix-ctrl", "update", "install", "--bundle-hash", "sha512-256:ab", "--reboot", "no", "http://u"}},
	} {
		f := &fakeRunner{answers: map[string]string{"rugix-ctrl --version": tc.version}}
		e, _ := New("rugix", f.run)
		if err := e.Install(context.Background(), "http://u", InstallOptions{BundleHash: "sha512-256:ab"}); err != nil {
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

func TestErrorsQuoteStderr(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	_, err := Exec(context.Background(), "sh", "-c", "echo first >&2; echo 'the real reason' >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "the real reason") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("err = %v", err)
	}
	_, err = Exec(context.Background(), "rugix-ctrl-does-not-exist")
	if err == nil || !strings.Contains(err.Error(), "not found on PATH") {
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

func TestLimitedBufferKeepsTail(t *testing.T) {
	var b bytes.Buffer
	lb := &limitedBuffer{buf: &b, max: 8}
	for _, s := range []string{"0123", "4567", "89", "abcdefghijkl"} {
		if n, _ := lb.Write([]byte(s)); n != len(s) {
			t.Fatalf("short write")
		}
	}
	if b.String() != "efghijkl" {
		t.Errorf("tail = %q", b.String())
	}
	b.Reset()
	lb.Write([]byte("01234"))
	lb.Write([]byte("5678"))
	if b.String() != "12345678" {
		t.Errorf("tail = %q", b.String())
	}
}

func TestRedact(t *testing.T) {
	in := `install --reboot no http://127.0.0.1:1/api/v1/blobs/repo_a_x?exp=1&sig=SECRET: Error: fetching "https://s3.example/b?X-Amz-Signature=SECRET" failed`
	got := Redact(in)
	if strings.Contains(got, "SECRET") || !strings.Contains(got, "http://127.0.0.1:1/api/v1/blobs/repo_a_x?<redacted>") {
		t.Errorf("Redact = %q", got)
	}
}
