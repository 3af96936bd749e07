// Package schema holds the JSON Schemas (draft 2020-12) of every file format otabake reads or
// writes and validates documents against them. The schemas are the one machine-readable
// statement of those formats: editors use them through their $id (TOML files reference them
// with a first-line "#:schema <$id>" comment, as taplo and Even Better TOML expect), and
// otabake checks what it reads against the same bytes, so the documentation cannot drift from
// the code.
//
// The canonical schema files live in schemas/ next to this file because go:embed cannot reach
// outside the package directory; the copies under schemas/ at the repository root, where users
// and editors look for them, are refreshed with `go generate ./internal/schema` and a test fails
// when they differ.
package schema

//go:generate sh -c "cp schemas/*.schema.json ../../schemas/"

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/otabake/otabake/internal/ctxio"
)

// Kinds of documents, as accepted by Validate and `otabake schema validate KIND`.
const (
	KindOtabake             = "otabake"                // otabake.toml
	KindAgent               = "agent"                  // /etc/otabake/agent.toml
	KindOTADefaults         = "ota-defaults"           // /etc/otabake/ota.json
	KindOTAConfig           = "dev.nexigon.ota.config" // device property
	KindOTAStatus           = "dev.nexigon.ota.status" // device property
	KindBundleAssetMetadata = "bundle-asset-metadata"  // Hub metadata of <system>.rugixb/.raucb
	KindImageAssetMetadata  = "image-asset-metadata"   // Hub metadata of <system>.img.xz
	KindVersionMetadata     = "version-metadata"       // Hub metadata of a version
	KindSystemBuildInfo     = "system-build-info"      // /etc/rugix/system-build-info.json
	KindRugixBundle         = "rugix-bundle"           // rugix-bundle.toml
)

// IDPrefix is the common prefix of every schema's $id; the $id of KIND is
// IDPrefix + KIND + ".schema.json".
const IDPrefix = "https://otabake.dev/schemas/"

// MaxDocumentSize bounds the files ValidateFile reads: every format here is a few kilobytes,
// and a bound keeps a wrong argument (a disk image) from being read into memory.
const MaxDocumentSize = 4 << 20

//go:embed schemas/*.schema.json
var files embed.FS

// Info describes one schema.
type Info struct {
	Kind        string `json:"kind"`
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description"`
	// File is the schema's file name in schemas/.
	File string `json:"file"`
}

type registry struct {
	infos   []Info
	byKind  map[string]*jsonschema.Schema
	sources map[string][]byte
}

var load = sync.OnceValues(func() (*registry, error) {
	entries, err := files.ReadDir("schemas")
	if err != nil {
		return nil, fmt.Errorf("schema: list embedded schemas: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	r := &registry{byKind: map[string]*jsonschema.Schema{}, sources: map[string][]byte{}}
	for _, e := range entries {
		name := e.Name()
		data, err := files.ReadFile("schemas/" + name)
		if err != nil {
			return nil, fmt.Errorf("schema: read %s: %w", name, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("schema: parse %s: %w", name, err)
		}
		k := strings.TrimSuffix(name, ".schema.json")
		obj, _ := doc.(map[string]any)
		id, _ := obj["$id"].(string)
		if id != IDPrefix+name {
			return nil, fmt.Errorf("schema: %s: $id %q, want %q", name, id, IDPrefix+name)
		}
		title, _ := obj["title"].(string)
		desc, _ := obj["description"].(string)
		if err := c.AddResource(id, doc); err != nil {
			return nil, fmt.Errorf("schema: add %s: %w", name, err)
		}
		r.infos = append(r.infos, Info{Kind: k, ID: id, Title: title, Description: desc, File: name})
		r.sources[k] = data
	}
	for _, in := range r.infos {
		s, err := c.Compile(in.ID)
		if err != nil {
			return nil, fmt.Errorf("schema: compile %s: %w", in.File, err)
		}
		r.byKind[in.Kind] = s
	}
	sort.Slice(r.infos, func(i, j int) bool { return r.infos[i].Kind < r.infos[j].Kind })
	return r, nil
})

// List returns every schema, sorted by kind.
func List() ([]Info, error) {
	r, err := load()
	if err != nil {
		return nil, err
	}
	return append([]Info(nil), r.infos...), nil
}

// Source returns the schema document of kind as stored.
func Source(kindName string) ([]byte, error) {
	r, err := load()
	if err != nil {
		return nil, err
	}
	data, ok := r.sources[kindName]
	if !ok {
		return nil, unknownKind(r, kindName)
	}
	return append([]byte(nil), data...), nil
}

func unknownKind(r *registry, k string) error {
	kinds := make([]string, len(r.infos))
	for i, in := range r.infos {
		kinds[i] = in.Kind
	}
	return fmt.Errorf("unknown schema kind %q; want one of %s", k, strings.Join(kinds, ", "))
}

// Violation is one rule a document breaks.
type Violation struct {
	// Pointer is the JSON pointer (RFC 6901) of the offending value; for a missing or
	// unexpected property it points at that property.
	Pointer string `json:"pointer"`
	// Rule is the schema keyword that failed (enum, required, additionalProperties, …).
	Rule string `json:"rule"`
	// Message says what is wrong, in the validator's words.
	Message string `json:"message"`
	// SchemaLocation is the absolute location of the failing keyword in the schema.
	SchemaLocation string `json:"schemaLocation"`
}

// Error is a document that does not match its schema.
type Error struct {
	Kind       string      `json:"kind"`
	Violations []Violation `json:"violations"`
}

// maxListed bounds how many violations Error prints; the rest are counted.
const maxListed = 5

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "does not match the %s schema: ", e.Kind)
	for i, v := range e.Violations {
		if i == maxListed {
			fmt.Fprintf(&b, "; and %d more", len(e.Violations)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "at %s: %s (rule %s)", displayPointer(v.Pointer), v.Message, v.Rule)
	}
	return b.String()
}

func displayPointer(p string) string {
	if p == "" {
		return "/ (the document)"
	}
	return p
}

// Without returns err without the violations of the given rules, or nil when none remain. It
// lets a reader that already reports some problems its own way (unknown keys as warnings, for
// example) keep the schema as the check for everything else. Other errors pass through.
func Without(err error, rules ...string) error {
	var se *Error
	if !errors.As(err, &se) {
		return err
	}
	out := &Error{Kind: se.Kind}
	for _, v := range se.Violations {
		drop := false
		for _, r := range rules {
			drop = drop || v.Rule == r
		}
		if !drop {
			out.Violations = append(out.Violations, v)
		}
	}
	if len(out.Violations) == 0 {
		return nil
	}
	return out
}

// Validate checks v against the schema of kind. v is any value encoding/json can marshal
// (decoded JSON or TOML, or a struct with json tags); it is compared as its JSON form. A
// mismatch is an *Error listing every violation with its JSON pointer and rule.
func Validate(kindName string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("schema %s: encode value: %w", kindName, err)
	}
	return ValidateJSON(kindName, data)
}

// ValidateJSON checks a JSON document against the schema of kind.
func ValidateJSON(kindName string, data []byte) error {
	r, err := load()
	if err != nil {
		return err
	}
	s, ok := r.byKind[kindName]
	if !ok {
		return unknownKind(r, kindName)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("parse JSON: %w", err)
	}
	return check(kindName, s, doc)
}

// ValidateTOML checks a TOML document against the schema of kind, as its JSON equivalent:
// tables are objects, arrays of tables arrays of objects, datetimes RFC 3339 strings.
func ValidateTOML(kindName string, data []byte) error {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return fmt.Errorf("parse TOML: %w", err)
	}
	if doc == nil {
		doc = map[string]any{}
	}
	return Validate(kindName, doc)
}

// ValidateFile reads path (TOML when it ends in .toml, JSON otherwise) and validates it. A
// "#:schema" comment naming a different otabake schema is an error, since the file claims to
// be something else.
func ValidateFile(kindName, path string) error {
	data, err := ctxio.ReadFile(path, MaxDocumentSize)
	if err != nil {
		return err
	}
	if d := Directive(data); d != "" {
		if k, ok := KindOfID(d); ok && k != kindName {
			return fmt.Errorf("%s: its #:schema comment names %s, not %s", path, k, kindName)
		}
	}
	if strings.EqualFold(filepath.Ext(path), ".toml") {
		err = ValidateTOML(kindName, data)
	} else {
		err = ValidateJSON(kindName, data)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Directive returns the schema URL of a "#:schema URL" comment among the leading comment
// lines of a TOML file, or "".
func Directive(data []byte) string {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		s := strings.TrimSpace(string(line))
		if s == "" {
			continue
		}
		if !strings.HasPrefix(s, "#") {
			return ""
		}
		if rest, ok := strings.CutPrefix(s, "#:schema"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// KindOfID returns the kind a schema URL or path refers to: an otabake $id, or any path or URL
// ending in "<kind>.schema.json" (a relative reference to the repository's schemas/).
func KindOfID(ref string) (string, bool) {
	r, err := load()
	if err != nil {
		return "", false
	}
	base := ref
	if i := strings.LastIndexAny(ref, "/\\"); i >= 0 {
		base = ref[i+1:]
	}
	k, ok := strings.CutSuffix(base, ".schema.json")
	if !ok {
		return "", false
	}
	_, known := r.byKind[k]
	return k, known
}

// KindOfFile reads the head of the file at path (64 KiB, enough for a leading #:schema
// comment) and guesses its kind with KindForFile; ok is false when neither comment nor name
// tells.
func KindOfFile(path string) (kind string, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	head, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", path, err)
	}
	kind, ok = KindForFile(path, head)
	return kind, ok, nil
}

// KindForFile guesses the kind of a file from its #:schema comment or its well-known name
// (otabake.toml, agent.toml, ota.json, rugix-bundle.toml, system-build-info.json).
func KindForFile(path string, data []byte) (string, bool) {
	if d := Directive(data); d != "" {
		if k, ok := KindOfID(d); ok {
			return k, true
		}
	}
	switch filepath.Base(path) {
	case "otabake.toml":
		return KindOtabake, true
	case "agent.toml":
		return KindAgent, true
	case "ota.json":
		return KindOTADefaults, true
	case "rugix-bundle.toml":
		return KindRugixBundle, true
	case "system-build-info.json":
		return KindSystemBuildInfo, true
	}
	return "", false
}

var printer = message.NewPrinter(language.English)

func check(kindName string, s *jsonschema.Schema, doc any) error {
	err := s.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("schema %s: %w", kindName, err)
	}
	out := &Error{Kind: kindName}
	collect(ve, &out.Violations)
	if len(out.Violations) == 0 { // cannot happen: a failed validation has a leaf
		out.Violations = append(out.Violations, Violation{Rule: "schema", Message: ve.Error()})
	}
	return out
}

// collect appends the leaves of the error tree: the keywords that actually failed, not the
// allOf/$ref wrappers above them.
func collect(ve *jsonschema.ValidationError, out *[]Violation) {
	if pn, ok := ve.ErrorKind.(*kind.PropertyNames); ok {
		// The causes describe the name as a separate instance with an empty location;
		// report them at the offending property instead.
		var why []Violation
		for _, c := range ve.Causes {
			collect(c, &why)
		}
		msg := fmt.Sprintf("invalid property name %q", pn.Property)
		for _, w := range why {
			msg += ": " + w.Message
		}
		*out = append(*out, Violation{
			Pointer:        pointer(append(append([]string(nil), ve.InstanceLocation...), pn.Property)),
			Rule:           "propertyNames",
			Message:        msg,
			SchemaLocation: ve.SchemaURL,
		})
		return
	}
	if len(ve.Causes) > 0 {
		for _, c := range ve.Causes {
			collect(c, out)
		}
		return
	}
	loc := append([]string(nil), ve.InstanceLocation...)
	var children []string
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		children = k.Missing
	case *kind.AdditionalProperties:
		children = k.Properties
	}
	kw := ve.ErrorKind.KeywordPath()
	v := Violation{
		Rule:           strings.Join(kw, "/"),
		Message:        ve.ErrorKind.LocalizedString(printer),
		SchemaLocation: ve.SchemaURL,
	}
	if len(kw) > 0 {
		v.SchemaLocation += "/" + v.Rule
	}
	if _, ok := ve.ErrorKind.(*kind.FalseSchema); ok {
		// A property the schema forbids in this context (slot with an execute delivery).
		v.Rule, v.Message = "false", "not allowed here"
	}
	if len(children) == 0 {
		v.Pointer = pointer(loc)
		*out = append(*out, v)
		return
	}
	for _, c := range children {
		v.Pointer = pointer(append(loc, c))
		*out = append(*out, v)
	}
}

// pointer encodes a location as an RFC 6901 JSON pointer.
func pointer(loc []string) string {
	var b strings.Builder
	for _, p := range loc {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(p))
	}
	return b.String()
}
