package project

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/otabake/otabake/internal/ctxio"
)

// maxConfigSize bounds the configuration files read; real ones are a few kilobytes.
const maxConfigSize = 4 << 20

// fileConfig is the schema of otabake.toml.
type fileConfig struct {
	Hub struct {
		URL        string `toml:"url"`
		TokenEnv   string `toml:"token_env"`
		Repository string `toml:"repository"`
		Package    string `toml:"package"`
		DefaultTag string `toml:"default_tag"`
	} `toml:"hub"`
	Release struct {
		BuildTag        string `toml:"build_tag"`
		FloatingTag     string `toml:"floating_tag"`
		SourceDateEpoch int64  `toml:"source_date_epoch"`
	} `toml:"release"`
	Systems map[string]*fileSystem `toml:"systems"`
}

// fileSystem is the schema of a [systems.NAME] table of otabake.toml.
type fileSystem struct {
	Target       string `toml:"target"`
	Architecture string `toml:"architecture"`
	Backend      string `toml:"backend"`
	Engine       string `toml:"engine"`
	Rauc         struct {
		Compatible string `toml:"compatible"`
	} `toml:"rauc"`
	Rootfs string `toml:"rootfs"`
	Boot   string `toml:"boot"`
	Sizes  struct {
		Config Size `toml:"config"`
		Boot   Size `toml:"boot"`
		System Size `toml:"system"`
		Total  Size `toml:"total"`
	} `toml:"sizes"`
	Bundle struct {
		Chunker     string `toml:"chunker"`
		Hash        string `toml:"hash"`
		Deduplicate *bool  `toml:"deduplicate"`
		Compression string `toml:"compression"`
		XZPreset    *int   `toml:"xz_preset"`
	} `toml:"bundle"`
	Signing struct {
		Key              string   `toml:"key"`
		Cert             string   `toml:"cert"`
		Chain            []string `toml:"chain"`
		PasswordEnv      string   `toml:"password_env"`
		Roots            []string `toml:"roots"`
		InsecureUnsigned bool     `toml:"insecure_unsigned"`
	} `toml:"signing"`
	UseBundleHash *bool `toml:"use_bundle_hash"`
	Yocto         struct {
		Machine   string `toml:"machine"`
		Image     string `toml:"image"`
		DeployDir string `toml:"deploy_dir"`
		ImageID   string `toml:"image_id"`
	} `toml:"yocto"`
	Grub struct {
		EFIBinary     string `toml:"efi_binary"`
		PreferMkimage bool   `toml:"prefer_mkimage"`
	} `toml:"grub"`
}

// tomlDoc is a decoded TOML file with what is needed to point at its lines.
type tomlDoc struct {
	name  string // file name used in messages
	md    toml.MetaData
	lines keyLines
}

// where returns "name:line" for a key path, or just the name when the line is unknown.
func (d *tomlDoc) where(path ...string) string {
	if l := d.lines.line(path...); l > 0 {
		return fmt.Sprintf("%s:%d", d.name, l)
	}
	return d.name
}

// readSmallFile reads a configuration file (ctxio.ReadFile's bounds); found is false when it
// does not exist.
func readSmallFile(path string) (data []byte, found bool, err error) {
	data, err = ctxio.ReadFile(path, maxConfigSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// decodeTOML decodes data into v. Syntax errors, wrong types and (when strict) keys v does not
// have are errors of the form "name:line: key: problem".
func decodeTOML(name string, data []byte, v any, strict bool) (*tomlDoc, error) {
	doc := &tomlDoc{name: name, lines: scanKeyLines(data)}
	md, err := toml.Decode(string(data), v)
	doc.md = md
	if err != nil {
		return nil, doc.decodeError(err)
	}
	if strict {
		if und := md.Undecoded(); len(und) > 0 {
			return nil, doc.unknownKey(und, reflect.TypeOf(v))
		}
	}
	return doc, nil
}

var typeErrRE = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "((?:[^"\\]|\\.)*)"\): (.*)$`)

// decodeError rewrites a BurntSushi/toml error as "file:line: key: message".
func (d *tomlDoc) decodeError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		loc := fmt.Sprintf("%s:%d", d.name, pe.Position.Line)
		msg := strings.TrimPrefix(pe.Message, "toml: ")
		if pe.LastKey != "" {
			return fmt.Errorf("%s: %s: %s", loc, pe.LastKey, msg)
		}
		return fmt.Errorf("%s: %s", loc, msg)
	}
	if m := typeErrRE.FindStringSubmatch(err.Error()); m != nil {
		key, msg := m[2], strings.Replace(m[3], "incompatible types: ", "wrong type: ", 1)
		loc := d.name
		if m[1] != "" {
			loc += ":" + m[1]
		} else if l := d.lines.line(splitKey(key)...); l > 0 {
			loc += ":" + strconv.Itoa(l)
		}
		return fmt.Errorf("%s: %s: %s", loc, key, msg)
	}
	return fmt.Errorf("%s: %w", d.name, err)
}

// splitKey splits a toml.Key string of bare keys; quoted parts are good enough for a lookup.
func splitKey(s string) []string { return strings.Split(s, ".") }

// unknownKey reports the first undecoded key with the keys allowed in its table.
func (d *tomlDoc) unknownKey(und []toml.Key, root reflect.Type) error {
	k := und[0]
	msg := fmt.Sprintf("%s: unknown key %s", d.where(k...), keyString(k))
	if allowed := allowedKeys(root, k[:len(k)-1]); len(allowed) > 0 {
		table := "at the top level"
		if len(k) > 1 {
			table = "in [" + keyString(k[:len(k)-1]) + "]"
		}
		if near := closest(k[len(k)-1], allowed); near != "" {
			msg += fmt.Sprintf(": did you mean %s?", near)
		}
		msg += fmt.Sprintf(" (allowed %s: %s)", table, strings.Join(allowed, ", "))
	}
	if more := len(und) - 1; more > 0 {
		msg += fmt.Sprintf(" and %d more unknown key(s)", more)
	}
	return errors.New(msg)
}

// allowedKeys lists the toml tags of the struct reached by path from root.
func allowedKeys(root reflect.Type, path []string) []string {
	t := root
	for _, p := range path {
		t = derefType(t)
		switch t.Kind() {
		case reflect.Map:
			t = t.Elem()
		case reflect.Struct:
			f, ok := fieldByTag(t, p)
			if !ok {
				return nil
			}
			t = f.Type
		default:
			return nil
		}
	}
	t = derefType(t)
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" {
			out = append(out, tag)
		}
	}
	sort.Strings(out)
	return out
}

func derefType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("toml") == tag {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// closest returns the candidate nearest to s within edit distance 2, or one s abbreviates
// (at least 3 characters), or "".
func closest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		d := editDistance(s, c)
		if len(s) >= 3 && strings.HasPrefix(c, s) {
			d = min(d, 2)
		}
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
