package project

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/schema"
)

// LoadOptions are the inputs of Load besides the project files.
type LoadOptions struct {
	// Env is the process environment in os.Environ form; nil means os.Environ().
	Env []string
	// Overrides are command-line values keyed by setting name (see Overrides); a present key
	// wins even when its value is empty, so "--hub-url ''" selects the local Hub.
	Overrides map[string]string
}

// Setting names, as used in LoadOptions.Overrides and Setting.Key.
const (
	KeyHubURL             = "hub.url"
	KeyHubToken           = "hub.token"
	KeyHubTokenEnv        = "hub.token_env"
	KeyNexigonCLIConfig   = "hub.nexigon_cli_config"
	KeyHubRepository      = "hub.repository"
	KeyHubPackage         = "hub.package"
	KeyHubDefaultTag      = "hub.default_tag"
	KeyBuildTag           = "release.build_tag"
	KeyFloatingTag        = "release.floating_tag"
	KeyBuildTagPattern    = "release.build_tag_pattern"
	KeyFloatingTagPattern = "release.floating_tag_pattern"
	KeySourceDateEpoch    = "release.source_date_epoch"
)

// Override describes a setting that a command-line flag may set.
type Override struct {
	Key  string
	Flag string // flag name without dashes
	// Usage is the flag's help text.
	Usage string
}

// Overrides lists the settings flags may override, with the flag names the CLI uses, so that
// every command spells them the same and Settings can name the flag as the source.
var Overrides = []Override{
	{KeyHubURL, "hub-url", "Nexigon Hub URL (\"\" = the embedded local Hub) [$NEXIGON_HUB_URL]"},
	{KeyHubToken, "hub-token", "Hub user or organization API token (u_sk_…, org_sk_…); prefer nexigon-cli's configuration or OTABAKE_HUB_TOKEN, flags are visible to other users"},
	{KeyNexigonCLIConfig, "nexigon-cli-config", "nexigon-cli configuration `FILE` with hub-url and token (default: ./.nexigon-cli.toml, else ~/.nexigon/cli.toml)"},
	{KeyHubRepository, "repository", "Hub repository [$NEXIGON_REPOSITORY]"},
	{KeyHubPackage, "package", "Hub package [$NEXIGON_PACKAGE]"},
	{KeyHubDefaultTag, "default-tag", "floating tag devices track (default \"stable\")"},
	{KeyBuildTag, "build-tag", "pin the build tag (= VERSION) [$BUILD_TAG]"},
	{KeyFloatingTag, "floating-tag", "pin the floating build tag [$FLOATING_TAG]"},
	{KeyBuildTagPattern, "build-tag-pattern", "build tag pattern with {time}, {commit}, {branch}"},
	{KeyFloatingTagPattern, "floating-tag-pattern", "floating tag pattern with {time}, {commit}, {branch}"},
	{KeySourceDateEpoch, "source-date-epoch", "build time in seconds since 1970 [$SOURCE_DATE_EPOCH]"},
}

func overrideFlag(key string) (string, bool) {
	for _, o := range Overrides {
		if o.Key == key {
			return o.Flag, true
		}
	}
	return "", false
}

// Load reads and validates the configuration of the project in dir. Missing files are fine
// (a project may be configured by .env alone); malformed ones are errors naming file and line.
func Load(dir string, opts LoadOptions) (*Config, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("project directory %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("project directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("project directory %s: not a directory", abs)
	}
	for k := range opts.Overrides {
		if _, ok := overrideFlag(k); !ok {
			return nil, fmt.Errorf("unknown configuration override %q", k)
		}
	}
	l := &loader{cfg: &Config{Dir: abs}, overrides: opts.Overrides, env: envMap(opts.Env), dotenv: map[string]DotEnvEntry{}}
	if err := l.readFiles(); err != nil {
		return nil, err
	}
	if err := l.resolveHub(); err != nil {
		return nil, err
	}
	if err := l.resolveRelease(); err != nil {
		return nil, err
	}
	if err := l.resolveSystems(); err != nil {
		return nil, err
	}
	// The checks above name file and line; the schema catches whatever they do not cover.
	if l.fileData != nil {
		if err := schema.ValidateTOML(schema.KindOtabake, l.fileData); err != nil {
			return nil, fmt.Errorf("%s: %w", FileName, err)
		}
	}
	l.cfg.state = &configState{settings: l.settings, env: l.env, dotenv: l.dotenv}
	return l.cfg, nil
}

type loader struct {
	cfg       *Config
	overrides map[string]string
	env       map[string]string
	dotenv    map[string]DotEnvEntry
	cli       map[string]string // the nexigon-cli configuration (readNexigonCLIConfig)
	cliDoc    *tomlDoc
	cliPath   string // its absolute path, "" when none was found
	cliFrom   string // why that file: "flag --nexigon-cli-config", "project directory", "home directory"
	file      fileConfig
	doc       *tomlDoc // otabake.toml; nil when absent
	fileData  []byte   // otabake.toml as read, for the schema check
	bakery    []*System
	settings  []Setting
}

func envMap(env []string) map[string]string {
	if env == nil {
		env = os.Environ()
	}
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v // the last assignment wins, as for exec.Cmd
		}
	}
	return m
}

func (l *loader) readFiles() error {
	dir := l.cfg.Dir
	if data, ok, err := readSmallFile(filepath.Join(dir, DotEnvFileName)); err != nil {
		return err
	} else if ok {
		entries, err := ParseDotEnv(DotEnvFileName, bytes.NewReader(data))
		if err != nil {
			return err
		}
		for _, e := range entries {
			l.dotenv[e.Key] = e
		}
		l.cfg.Files = append(l.cfg.Files, DotEnvFileName)
	}
	if err := l.readNexigonCLIConfig(); err != nil {
		return err
	}
	if data, ok, err := readSmallFile(filepath.Join(dir, FileName)); err != nil {
		return err
	} else if ok {
		doc, err := decodeTOML(FileName, data, &l.file, true)
		if err != nil {
			return err
		}
		l.doc = doc
		l.fileData = data
		l.cfg.Files = append(l.cfg.Files, FileName)
	}
	if data, ok, err := readSmallFile(filepath.Join(dir, BakeryFileName)); err != nil {
		return err
	} else if ok {
		systems, err := bakerySystems(BakeryFileName, data)
		if err != nil {
			return err
		}
		l.bakery = systems
		l.cfg.Files = append(l.cfg.Files, BakeryFileName)
	}
	return nil
}

// source is one candidate value for a setting.
type source struct {
	envNames []string // environment and .env names, in priority order
	cliKey   string   // .nexigon-cli.toml key
	filePath []string // otabake.toml key path
	fileVal  string
	def      string
}

// pick resolves key through flags > environment > .env > .nexigon-cli.toml > otabake.toml >
// default. Empty environment and .env values count as unset, as ${VAR:-…} does in the scripts.
func (l *loader) pick(key string, s source) (value, from string) {
	if v, ok := l.overrides[key]; ok {
		flag, _ := overrideFlag(key)
		return v, "flag --" + flag
	}
	for _, n := range s.envNames {
		if v := l.env[n]; v != "" {
			return v, "environment " + n
		}
	}
	for _, n := range s.envNames {
		if e, ok := l.dotenv[n]; ok && e.Value != "" {
			return e.Value, fmt.Sprintf("%s:%d", DotEnvFileName, e.Line)
		}
	}
	if s.cliKey != "" {
		if v, ok := l.cli[s.cliKey]; ok {
			return v, l.cliDoc.where(s.cliKey)
		}
	}
	if s.filePath != nil && l.doc != nil && l.doc.md.IsDefined(s.filePath...) {
		return s.fileVal, l.doc.where(s.filePath...)
	}
	return s.def, "default"
}

func (l *loader) record(key string, value any, from string) {
	l.settings = append(l.settings, Setting{Key: key, Value: value, Source: from})
}

// LookupEnv returns a variable from the environment Load saw, falling back to the project's
// .env file, the way the release scripts see their variables after ". .env".
func (c *Config) LookupEnv(name string) (string, bool) {
	if c.state == nil {
		return "", false
	}
	if v, ok := c.state.env[name]; ok && v != "" {
		return v, true
	}
	if e, ok := c.state.dotenv[name]; ok {
		return e.Value, true
	}
	return "", false
}

func (l *loader) resolveHub() error {
	h := &l.cfg.Hub
	fh := l.file.Hub
	var from string

	h.URL, from = l.pick(KeyHubURL, source{envNames: []string{"NEXIGON_HUB_URL"}, cliKey: "hub-url", filePath: []string{"hub", "url"}, fileVal: fh.URL})
	h.URL = strings.TrimRight(strings.TrimSpace(h.URL), "/")
	if err := validHubURL(h.URL); err != nil {
		return fmt.Errorf("%s: %s: %w", from, KeyHubURL, err)
	}
	l.record(KeyHubURL, h.URL, from)
	h.URLSource = from
	if l.cliPath != "" {
		l.record(KeyNexigonCLIConfig, l.cliPath, l.cliFrom)
	} else {
		l.record(KeyNexigonCLIConfig, "", "none found")
	}

	h.TokenEnv, from = l.pick(KeyHubTokenEnv, source{filePath: []string{"hub", "token_env"}, fileVal: fh.TokenEnv, def: DefaultTokenEnv})
	if !validEnvName(h.TokenEnv) {
		return fmt.Errorf("%s: %s: %q is not an environment variable name", from, KeyHubTokenEnv, h.TokenEnv)
	}
	l.record(KeyHubTokenEnv, h.TokenEnv, from)

	if err := l.resolveToken(); err != nil {
		return err
	}
	l.checkTokenHub()

	names := []struct {
		key, what string
		env       []string
		path      string
		fileVal   string
		def       string
		dst       *string
	}{
		{KeyHubRepository, "repository", []string{"NEXIGON_REPOSITORY", "NEXIGON_OTA_REPOSITORY"}, "repository", fh.Repository, "", &h.Repository},
		{KeyHubPackage, "package", []string{"NEXIGON_PACKAGE", "NEXIGON_OTA_PACKAGE"}, "package", fh.Package, "", &h.Package},
		{KeyHubDefaultTag, "tag", nil, "default_tag", fh.DefaultTag, DefaultTag, &h.DefaultTag},
	}
	for _, n := range names {
		*n.dst, from = l.pick(n.key, source{envNames: n.env, filePath: []string{"hub", n.path}, fileVal: n.fileVal, def: n.def})
		if *n.dst != "" {
			if err := validName(n.what, *n.dst); err != nil {
				return fmt.Errorf("%s: %s: %w", from, n.key, err)
			}
		}
		if *n.dst == "" {
			from = "unset"
		}
		l.record(n.key, *n.dst, from)
	}
	return nil
}

func validHubURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an http(s) URL such as https://eu.nexigon.cloud")
	}
	if u.User != nil {
		return fmt.Errorf("the URL must not contain credentials: set the token with NEXIGON_TOKEN")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("want a base URL without query or fragment")
	}
	return nil
}

// validName checks a Hub name and returns the Hub's message without the ActionError kind.
func validName(what, s string) error {
	if err := hub.ValidName(what, s, maxNameLen); err != nil {
		var ae *hub.ActionError
		if errors.As(err, &ae) {
			return errors.New(ae.Message)
		}
		return err
	}
	return nil
}

func (l *loader) resolveRelease() error {
	r := &l.cfg.Release
	fr := l.file.Release
	var from string

	for _, t := range []struct {
		key, env string
		dst      *string
	}{
		{KeyBuildTag, "BUILD_TAG", &r.BuildTag},
		{KeyFloatingTag, "FLOATING_TAG", &r.FloatingTag},
	} {
		*t.dst, from = l.pick(t.key, source{envNames: []string{t.env}})
		if *t.dst != "" {
			if err := validName("tag", *t.dst); err != nil {
				return fmt.Errorf("%s: %s: %w", from, t.key, err)
			}
		} else {
			from = "unset"
		}
		l.record(t.key, *t.dst, from)
	}

	for _, p := range []struct {
		key, path, fileVal, def string
		dst                     *string
	}{
		{KeyBuildTagPattern, "build_tag", fr.BuildTag, DefaultBuildTagPattern, &r.BuildTagPattern},
		{KeyFloatingTagPattern, "floating_tag", fr.FloatingTag, DefaultFloatingTagPattern, &r.FloatingTagPattern},
	} {
		*p.dst, from = l.pick(p.key, source{filePath: []string{"release", p.path}, fileVal: p.fileVal, def: p.def})
		if err := validPattern(*p.dst); err != nil {
			return fmt.Errorf("%s: %s: %w", from, p.key, err)
		}
		l.record(p.key, *p.dst, from)
	}

	var fileEpoch string
	if l.doc != nil && l.doc.md.IsDefined("release", "source_date_epoch") {
		fileEpoch = strconv.FormatInt(fr.SourceDateEpoch, 10)
	}
	epoch, from := l.pick(KeySourceDateEpoch, source{envNames: []string{"SOURCE_DATE_EPOCH"}, filePath: []string{"release", "source_date_epoch"}, fileVal: fileEpoch})
	if epoch == "" {
		l.record(KeySourceDateEpoch, nil, "unset")
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(epoch), 10, 64)
	if err != nil || n < 0 || n > 253402300799 {
		return fmt.Errorf("%s: %s: %q is not a number of seconds since 1970 (0..253402300799)", from, KeySourceDateEpoch, epoch)
	}
	r.SourceDateEpoch = &n
	l.record(KeySourceDateEpoch, n, from)
	return nil
}

// validPattern checks a tag pattern's placeholders and that its literal text is valid in a tag.
func validPattern(p string) error {
	if err := ValidatePattern(p); err != nil {
		return err
	}
	sample, err := ExpandPattern(p, map[string]string{"time": "20260101000000", "commit": "0123abc", "branch": "main"})
	if err != nil {
		return err
	}
	if err := validName("tag", sample); err != nil {
		return fmt.Errorf("pattern %q does not make a valid tag (%s)", p, sample)
	}
	return nil
}

var sysNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`)

// validSystemName checks a system name: it becomes build/<name>/ and asset filenames.
func validSystemName(name string) error {
	if len(name) > maxNameLen || !sysNameRE.MatchString(name) {
		return fmt.Errorf("invalid system name %q: want 1..%d characters of [a-zA-Z0-9._-], starting with a letter or digit", name, maxNameLen)
	}
	return nil
}
