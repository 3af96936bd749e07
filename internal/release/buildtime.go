package release

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/project"
)

// TimeSource names where a build's time came from.
type TimeSource string

// The sources of a build's time, in the order BuildTimeOf tries them.
const (
	// TimeFromSourceDateEpoch is SOURCE_DATE_EPOCH (the environment, .env, the
	// --source-date-epoch flag or release.source_date_epoch in otabake.toml): it always wins.
	TimeFromSourceDateEpoch TimeSource = "SOURCE_DATE_EPOCH"
	// TimeFromRelease is the time prepare-release pinned with the version (RELEASE_EPOCH in
	// .release-env, or the identity `otabake release` just made).
	TimeFromRelease TimeSource = "release"
	// TimeFromVersion is the {time} of the version, read back through the build tag pattern
	// (a .release-env written without RELEASE_EPOCH, such as by meta-nexigon's scripts).
	TimeFromVersion TimeSource = "version"
	// TimeFromCommit is the committer time of HEAD, when no release time is pinned.
	TimeFromCommit TimeSource = "commit"
	// TimeFromClock is the wall clock: the last resort, and not reproducible.
	TimeFromClock TimeSource = "clock"
)

// BuildTime is the one time a build writes wherever a time goes: ext4 and FAT timestamps and
// the clamp of every file time, the U-Boot script headers, GRUB's image, the SBOM's created
// and the CMS signingTime of the bundle. Two builds with the same BuildTime, release and
// inputs write the same bytes.
type BuildTime struct {
	Time   time.Time  `json:"time"`
	Epoch  int64      `json:"epoch"`
	Source TimeSource `json:"source"`
	// From says where exactly, e.g. "environment SOURCE_DATE_EPOCH", "RELEASE_EPOCH in
	// .release-env", "version build-20260101000000-abc1234" or "commit abc1234".
	From string `json:"from"`
}

// String is the summary's line: the time, the epoch and where it came from, e.g.
// "2026-01-01T00:00:00Z (epoch 1767225600), the release's time: RELEASE_EPOCH in .release-env".
func (b BuildTime) String() string {
	label := map[TimeSource]string{
		TimeFromSourceDateEpoch: "SOURCE_DATE_EPOCH",
		TimeFromRelease:         "the release's time",
		TimeFromVersion:         "the version's time",
		TimeFromCommit:          "the commit's time",
		TimeFromClock:           "the clock, not reproducible",
	}[b.Source]
	if label == "" {
		label = string(b.Source)
	}
	return fmt.Sprintf("%s (epoch %d), %s: %s", b.Time.Format(time.RFC3339), b.Epoch, label, b.From)
}

// Reproducible reports whether building again picks the same time.
func (b BuildTime) Reproducible() bool { return b.Source != TimeFromClock }

func newBuildTime(t time.Time, src TimeSource, from string) BuildTime {
	t = t.UTC().Truncate(time.Second)
	return BuildTime{Time: t, Epoch: t.Unix(), Source: src, From: from}
}

// BuildTimeOf is the rule for the time of a build of the release id in the project cfg:
//
//  1. SOURCE_DATE_EPOCH when set, wherever the project configuration took it from;
//  2. else the release's time pinned by prepare-release (RELEASE_EPOCH in .release-env);
//  3. else the {time} in the version, when the build tag pattern has one and the version
//     matches it (a .release-env without RELEASE_EPOCH);
//  4. else the committer time of the project's git HEAD;
//  5. else the wall clock, now(), with a warning: that build is not reproducible.
//
// now nil means time.Now. Every time a build writes comes from here (see BuildTime).
func BuildTimeOf(ctx context.Context, cfg *project.Config, id *Identity, now func() time.Time) (BuildTime, []string) {
	if t, from, ok := sourceDateEpoch(cfg); ok {
		return newBuildTime(t, TimeFromSourceDateEpoch, from), nil
	}
	if id != nil && !id.Time.IsZero() {
		from := id.TimeFrom
		if from == "" {
			from = "the release identity"
		}
		return newBuildTime(id.Time, TimeFromRelease, from), nil
	}
	if id != nil {
		for _, tag := range []string{id.BuildTag, id.Version} {
			if t, ok := timeFromTag(cfg.Release.BuildTagPattern, tag); ok {
				return newBuildTime(t, TimeFromVersion, "version "+tag), nil
			}
		}
	}
	t, commit, err := commitTime(ctx, cfg.Dir)
	if err == nil {
		return newBuildTime(t, TimeFromCommit, "commit "+commit), nil
	}
	if now == nil {
		now = time.Now
	}
	return newBuildTime(now(), TimeFromClock, "the clock"), []string{fmt.Sprintf(
		"not reproducible: the build time is the clock (no SOURCE_DATE_EPOCH, no RELEASE_EPOCH in %s, no time in the version, no git commit: %v); run 'otabake prepare-release' or set SOURCE_DATE_EPOCH", EnvFileName, err)}
}

// releaseTime is the time prepare-release pins for a new release: SOURCE_DATE_EPOCH when set,
// else now (UTC, whole seconds), with where it came from.
func releaseTime(cfg *project.Config, now func() time.Time) (time.Time, string) {
	if t, from, ok := sourceDateEpoch(cfg); ok {
		return t, from
	}
	if now == nil {
		now = time.Now
	}
	return now().UTC().Truncate(time.Second), "prepare-release"
}

// sourceDateEpoch is the project's SOURCE_DATE_EPOCH and the setting's source.
func sourceDateEpoch(cfg *project.Config) (time.Time, string, bool) {
	e := cfg.Release.SourceDateEpoch
	if e == nil {
		return time.Time{}, "", false
	}
	from := "SOURCE_DATE_EPOCH"
	for _, s := range cfg.Settings() {
		if s.Key == project.KeySourceDateEpoch && s.Source != "" {
			from = s.Source
		}
	}
	return time.Unix(*e, 0).UTC(), from, true
}

// tagTimeLayout is how {time} expands in a tag pattern.
const tagTimeLayout = "20060102150405"

// timeFromTag reads the {time} of tag back through pattern: the pattern's literal text must
// match, {time} must be 14 digits that parse as a UTC time, other placeholders match anything.
func timeFromTag(pattern, tag string) (time.Time, bool) {
	if tag == "" || !strings.Contains(pattern, "{time}") {
		return time.Time{}, false
	}
	var re strings.Builder
	re.WriteString("^")
	for s := pattern; s != ""; {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			re.WriteString(regexp.QuoteMeta(s))
			break
		}
		re.WriteString(regexp.QuoteMeta(s[:i]))
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return time.Time{}, false
		}
		if s[i+1:i+end] == "time" {
			re.WriteString(`([0-9]{14})`)
		} else {
			re.WriteString(`.*?`)
		}
		s = s[i+end+1:]
	}
	re.WriteString("$")
	rx, err := regexp.Compile(re.String())
	if err != nil {
		return time.Time{}, false
	}
	m := rx.FindStringSubmatch(tag)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(tagTimeLayout, m[1])
	if err != nil {
		return time.Time{}, false
	}
	for _, other := range m[2:] { // {time} twice: both must agree
		if other != m[1] {
			return time.Time{}, false
		}
	}
	return t, true
}

// commitTime is the committer time of HEAD in the git work tree containing dir, and its short
// commit.
func commitTime(ctx context.Context, dir string) (time.Time, string, error) {
	out, err := runGit(ctx, dir, "log", "-1", "--format=%ct %h", "HEAD")
	if err != nil {
		return time.Time{}, "", err
	}
	secs, commit, _ := strings.Cut(out, " ")
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("git log: committer time %q: %w", secs, err)
	}
	return time.Unix(n, 0).UTC(), commit, nil
}
