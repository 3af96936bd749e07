package release

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/ctxio"
	"github.com/otabake/otabake/internal/project"
)

// EnvFileName is the file prepare-release writes in the project directory and later steps
// read, as the Rugix Bakery template's scripts do.
const EnvFileName = ".release-env"

// LegacyEnvFileName is the name the meta-nexigon (Yocto) scripts use (nexigon/meta-nexigon
// scripts/prepare-release.sh writes it, build-release.sh and upload-release.sh source it).
// prepare-release always writes it next to .release-env with the same content, so that either
// family of scripts can follow otabake's prepare-release without knowing which one the project
// uses; it is read when .release-env is absent.
const LegacyEnvFileName = ".release.env"

// WriteEnvFiles writes the identity to .release-env and .release.env in dir (see
// LegacyEnvFileName) and returns their paths.
func WriteEnvFiles(dir string, id *Identity) ([]string, error) {
	var paths []string
	for _, name := range []string{EnvFileName, LegacyEnvFileName} {
		p := filepath.Join(dir, name)
		if err := WriteEnvFile(p, id); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// maxEnvFileSize bounds a .release-env read; a real one is about 150 bytes.
const maxEnvFileSize = 64 << 10

// EnvReleaseEpoch is the .release-env key of the release's time in seconds since 1970: every
// build of the release writes this time unless SOURCE_DATE_EPOCH is set (BuildTimeOf). It is
// not called SOURCE_DATE_EPOCH because CI jobs source the file with `set -a`, and an exported
// SOURCE_DATE_EPOCH would pin the next prepare-release's version to the old time.
const EnvReleaseEpoch = "RELEASE_EPOCH"

// WriteEnvFile atomically writes id as the KEY=VALUE lines the reference scripts source:
// BUILD_TAG, FLOATING_TAG, VERSION and VERSION_ID, quoted only when the shell needs it, and
// RELEASE_EPOCH when the identity has a time.
func WriteEnvFile(path string, id *Identity) error {
	for _, kv := range [][2]string{{"BUILD_TAG", id.BuildTag}, {"FLOATING_TAG", id.FloatingTag}, {"VERSION", id.Version}, {"VERSION_ID", id.VersionID}} {
		if kv[1] == "" {
			return fmt.Errorf("write %s: %s is empty", path, kv[0])
		}
		if strings.ContainsAny(kv[1], "\n\r\x00") {
			return fmt.Errorf("write %s: %s contains a line break or NUL", path, kv[0])
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "BUILD_TAG=%s\n", shellQuote(id.BuildTag))
	fmt.Fprintf(&b, "FLOATING_TAG=%s\n", shellQuote(id.FloatingTag))
	fmt.Fprintf(&b, "VERSION=%s\n", shellQuote(id.Version))
	fmt.Fprintf(&b, "VERSION_ID=%s\n", shellQuote(id.VersionID))
	if !id.Time.IsZero() {
		fmt.Fprintf(&b, "%s=%d\n", EnvReleaseEpoch, id.Time.Unix())
	}
	if err := atomicfile.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write release environment: %w", err)
	}
	return nil
}

// shellQuote returns s unchanged when the shell reads it literally, else single-quoted.
func shellQuote(s string) string {
	safe := s != ""
	for i := 0; i < len(s) && safe; i++ {
		c := s[i]
		safe = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-/:+@%,", c) >= 0
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ReadEnvFile reads the release identity pinned in dir: .release-env, or .release.env when
// only that exists. When both exist they must pin the same release: a meta-nexigon
// prepare-release.sh run after otabake's rewrites only .release.env, and building one version
// while uploading into another must not happen silently. It returns the identity and the path
// it read. Commit and Branch are not stored in the file and stay empty; Time is RELEASE_EPOCH,
// zero when the file has none (older otabake, meta-nexigon's scripts).
func ReadEnvFile(dir string) (*Identity, string, error) {
	id, path, err := readEnvFile(dir, EnvFileName, LegacyEnvFileName)
	if err != nil || filepath.Base(path) != EnvFileName {
		return id, path, err
	}
	if _, err := os.Lstat(filepath.Join(dir, LegacyEnvFileName)); errors.Is(err, os.ErrNotExist) {
		return id, path, nil
	}
	other, otherPath, err := readEnvFile(dir, LegacyEnvFileName)
	if err != nil {
		return nil, otherPath, err
	}
	if !sameRelease(id, other) {
		return nil, path, fmt.Errorf("%s pins %s (%s) but %s pins %s (%s): one is stale; run 'otabake prepare-release' again or remove the stale file",
			EnvFileName, pinned(id), orDash(id.VersionID), LegacyEnvFileName, pinned(other), orDash(other.VersionID))
	}
	if id.Time.IsZero() {
		id.Time, id.TimeFrom = other.Time, other.TimeFrom
	}
	return id, path, nil
}

// sameRelease reports whether two env files pin the same release. A file without
// RELEASE_EPOCH (rewritten by meta-nexigon's prepare-release.sh) agrees on any time.
func sameRelease(a, b *Identity) bool {
	return a.BuildTag == b.BuildTag && a.FloatingTag == b.FloatingTag && a.Version == b.Version && a.VersionID == b.VersionID &&
		(a.Time.IsZero() || b.Time.IsZero() || a.Time.Equal(b.Time))
}

// pinned names the version of an env file, with its time when it has one.
func pinned(id *Identity) string {
	if id.Time.IsZero() {
		return id.Version
	}
	return fmt.Sprintf("%s at %s=%d", id.Version, EnvReleaseEpoch, id.Time.Unix())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func readEnvFile(dir string, names ...string) (*Identity, string, error) {
	var (
		path string
		data []byte
	)
	for _, name := range names {
		p := filepath.Join(dir, name)
		d, err := ctxio.ReadFile(p, maxEnvFileSize)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, p, err
		}
		path, data = p, d
		break
	}
	if path == "" {
		return nil, "", fmt.Errorf("no %s in %s: run 'otabake prepare-release' first", EnvFileName, dir)
	}
	entries, err := project.ParseDotEnv(path, strings.NewReader(string(data)))
	if err != nil {
		return nil, path, err
	}
	vals := map[string]string{}
	for _, e := range entries {
		vals[e.Key] = e.Value
	}
	id := &Identity{BuildTag: vals["BUILD_TAG"], FloatingTag: vals["FLOATING_TAG"], Version: vals["VERSION"], VersionID: vals["VERSION_ID"]}
	if v := vals[EnvReleaseEpoch]; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 253402300799 {
			return nil, path, fmt.Errorf("%s: %s %q is not a number of seconds since 1970: run 'otabake prepare-release' again", path, EnvReleaseEpoch, v)
		}
		id.Time, id.TimeFrom = time.Unix(n, 0).UTC(), EnvReleaseEpoch+" in "+filepath.Base(path)
	}
	if id.Version == "" {
		return nil, path, fmt.Errorf("%s: VERSION is missing or empty: run 'otabake prepare-release' again", path)
	}
	if id.BuildTag == "" {
		return nil, path, fmt.Errorf("%s: BUILD_TAG is missing or empty: run 'otabake prepare-release' again", path)
	}
	for _, t := range [][2]string{{"BUILD_TAG", id.BuildTag}, {"FLOATING_TAG", id.FloatingTag}} {
		if t[1] == "" {
			continue
		}
		if err := validTag(t[1]); err != nil {
			return nil, path, fmt.Errorf("%s: %s: %w", path, t[0], err)
		}
	}
	return id, path, nil
}
