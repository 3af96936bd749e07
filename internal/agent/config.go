package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
)

// OTAConfig is the effective update configuration: the image defaults deep-merged with the
// dev.nexigon.ota.config property, as a JSON object (unknown keys are kept and republished).
type OTAConfig map[string]any

// Path is the configured <repository>/<package>/<tag>.
func (c OTAConfig) Path() string {
	s, _ := c["path"].(string)
	return s
}

// UseBundleHash reports rugix.useBundleHash.
func (c OTAConfig) UseBundleHash() bool {
	r, _ := c["rugix"].(map[string]any)
	b, _ := r["useBundleHash"].(bool)
	return b
}

// DeferFile is defer.file: while it exists, updates are deferred.
func (c OTAConfig) DeferFile() string {
	d, _ := c["defer"].(map[string]any)
	s, _ := d["file"].(string)
	return s
}

// DeferInhibitor is defer.inhibitor: while a systemd inhibitor lock of that "who" is held,
// updates are deferred.
func (c OTAConfig) DeferInhibitor() string {
	d, _ := c["defer"].(map[string]any)
	s, _ := d["inhibitor"].(string)
	return s
}

func (c OTAConfig) digest() string {
	b, _ := json.Marshal(c) // maps marshal with sorted keys: a canonical form
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// parseObject decodes a JSON object; null or empty input is an empty object.
func parseObject(data []byte, what string) (OTAConfig, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return OTAConfig{}, nil
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: want a JSON object: %w", what, err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// loadDefaults reads the image defaults; a missing file is an empty configuration.
func loadDefaults(path string) (OTAConfig, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return OTAConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read image OTA defaults: %w", err)
	}
	c, err := parseObject(data, path)
	if err != nil {
		return nil, err
	}
	// A mistyped default (useBundleHash as a string, a path without a tag) would otherwise
	// be read as "not set" and silently weaken the image's policy.
	if err := checkOTAConfig(c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// otaPathRE is a <repository>/<package>/<tag> path, as in dev.nexigon.ota.config.schema.json.
// Each part is 1..128 characters, the Hub's limit on repository, package and tag names
// (nexigon/nexigon crates/libs/nexigon-api/schemas/repositories.sidex).
var otaPathRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}/[A-Za-z0-9][A-Za-z0-9._-]{0,127}/[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// checkOTAConfig checks the keys the agent reads with the rules of
// dev.nexigon.ota.config.schema.json; other keys are allowed and kept. It is done by hand
// rather than with internal/schema, whose validator would add over a megabyte to every device
// binary.
func checkOTAConfig(c OTAConfig) error {
	if v, ok := c["path"]; ok {
		s, isStr := v.(string)
		if !isStr {
			return fmt.Errorf("path: got %s, want a string", jsonType(v))
		}
		if !otaPathRE.MatchString(s) {
			return fmt.Errorf("path %q: want <repository>/<package>/<tag>, each 1 to 128 of A-Z a-z 0-9 . _ - starting with a letter or digit", s)
		}
	}
	if v, ok := c["rugix"]; ok {
		r, isObj := v.(map[string]any)
		if !isObj {
			return fmt.Errorf("rugix: got %s, want an object", jsonType(v))
		}
		if b, ok := r["useBundleHash"]; ok {
			if _, isBool := b.(bool); !isBool {
				return fmt.Errorf("rugix.useBundleHash: got %s, want a boolean", jsonType(b))
			}
		}
	}
	if v, ok := c["defer"]; ok {
		d, isObj := v.(map[string]any)
		if !isObj {
			return fmt.Errorf("defer: got %s, want an object", jsonType(v))
		}
		if f, ok := d["file"]; ok {
			s, isStr := f.(string)
			if !isStr {
				return fmt.Errorf("defer.file: got %s, want a string", jsonType(f))
			}
			if !strings.HasPrefix(s, "/") {
				return fmt.Errorf("defer.file %q: want an absolute path", s)
			}
		}
		if w, ok := d["inhibitor"]; ok {
			s, isStr := w.(string)
			if !isStr {
				return fmt.Errorf("defer.inhibitor: got %s, want a string", jsonType(w))
			}
			if s == "" {
				return errors.New("defer.inhibitor is empty: want the \"who\" of a systemd inhibitor lock")
			}
		}
	}
	return nil
}

// jsonType names the JSON type of a value decoded by encoding/json (with UseNumber).
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// Merge deep-merges override over base like jq's `*`: objects merge key by key, anything else
// replaces. Neither input is modified.
func Merge(base, override map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(override))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range override {
		if bo, ok := out[k].(map[string]any); ok {
			if oo, ok := v.(map[string]any); ok {
				out[k] = Merge(bo, oo)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// effectiveConfig merges the property over the defaults and pins rugix.useBundleHash to the
// image's value: verification policy is the image's, not the cloud's. sources says where each
// top-level key came from.
func effectiveConfig(defaults, override OTAConfig) (OTAConfig, map[string]string) {
	eff := OTAConfig(Merge(defaults, override))
	sources := map[string]string{}
	for k := range defaults {
		sources[k] = "image defaults (" + DefaultsFile + ")"
	}
	for k := range override {
		sources[k] = "device property " + ConfigProperty
	}
	if r, ok := eff["rugix"].(map[string]any); ok {
		r = Merge(r, nil)
		if dr, ok := defaults["rugix"].(map[string]any); ok && dr["useBundleHash"] != nil {
			r["useBundleHash"] = dr["useBundleHash"]
		} else {
			delete(r, "useBundleHash")
		}
		if len(r) == 0 {
			delete(eff, "rugix")
		} else {
			eff["rugix"] = r
		}
	}
	if _, ok := eff["rugix"]; ok {
		if _, fromOverride := override["rugix"]; fromOverride {
			sources["rugix"] = "image defaults, merged with device property (useBundleHash from the image only)"
		}
	}
	return eff, sources
}

// identity returns the system name and running version: Rugix Bakery's build info if present,
// otherwise IMAGE_ID and IMAGE_VERSION from os-release.
func (a *Agent) identity() (system, version string, err error) {
	data, err := os.ReadFile(a.path(BuildInfoFile))
	if err == nil {
		var bi struct {
			Name    string `json:"name"`
			Release struct {
				Version string `json:"version"`
			} `json:"release"`
		}
		if err := json.Unmarshal(data, &bi); err != nil {
			return "", "", fmt.Errorf("parse %s: %w", BuildInfoFile, err)
		}
		if bi.Name == "" || bi.Release.Version == "" {
			return "", "", fmt.Errorf("%s: name or release.version missing", BuildInfoFile)
		}
		return bi.Name, bi.Release.Version, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("read build info: %w", err)
	}
	for _, f := range osReleaseFiles {
		data, err := os.ReadFile(a.path(f))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", "", fmt.Errorf("read os-release: %w", err)
		}
		vals := ParseOSRelease(data)
		if vals["IMAGE_ID"] == "" || vals["IMAGE_VERSION"] == "" {
			return "", "", fmt.Errorf("%s: IMAGE_ID or IMAGE_VERSION not set (and no %s)", f, BuildInfoFile)
		}
		return vals["IMAGE_ID"], vals["IMAGE_VERSION"], nil
	}
	return "", "", fmt.Errorf("cannot determine the system name and version: neither %s nor os-release exists", BuildInfoFile)
}

// ParseOSRelease parses os-release KEY=value lines with shell-style quotes.
func ParseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			q := v[0]
			v = v[1 : len(v)-1]
			if q == '"' {
				r := strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`")
				v = r.Replace(v)
			}
		}
		out[k] = v
	}
	return out
}
