package schema_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/schema"
)

// repoRoot is the repository root, two levels above this package.
var repoRoot = filepath.Join("..", "..")

func TestEverySchemaCompiles(t *testing.T) {
	infos, err := schema.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		schema.KindAgent, schema.KindBundleAssetMetadata, schema.KindOTAConfig, schema.KindOTAStatus,
		schema.KindImageAssetMetadata, schema.KindOTADefaults, schema.KindOtabake, schema.KindRugixBundle,
		schema.KindSystemBuildInfo, schema.KindVersionMetadata,
	}
	if len(infos) != len(want) {
		t.Fatalf("List() has %d schemas, want %d", len(infos), len(want))
	}
	for i, in := range infos {
		if in.Kind != want[i] {
			t.Errorf("schema %d is %q, want %q", i, in.Kind, want[i])
		}
		if in.ID != schema.IDPrefix+in.Kind+".schema.json" {
			t.Errorf("%s: $id %s", in.Kind, in.ID)
		}
		if in.Title == "" || in.Description == "" {
			t.Errorf("%s: title and description are required, they are what editors show", in.Kind)
		}
		src, err := schema.Source(in.Kind)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Schema string `json:"$schema"`
		}
		if err := json.Unmarshal(src, &doc); err != nil || doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %q (%v), want draft 2020-12", in.Kind, doc.Schema, err)
		}
		// Every kind accepts some document and rejects a non-object.
		if err := schema.ValidateJSON(in.Kind, []byte(`42`)); err == nil {
			t.Errorf("%s accepts 42", in.Kind)
		}
	}
	if _, err := schema.Source("nope"); err == nil || !strings.Contains(err.Error(), "otabake, ") {
		t.Errorf("Source(nope) = %v, want the list of kinds", err)
	}
}

// TestRepositoryCopies keeps schemas/ at the repository root identical to the embedded
// canonical files; `go generate ./internal/schema` refreshes the copies.
func TestRepositoryCopies(t *testing.T) {
	infos, err := schema.List()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, in := range infos {
		known[in.File] = true
		want, _ := schema.Source(in.Kind)
		got, err := os.ReadFile(filepath.Join(repoRoot, "schemas", in.File))
		if err != nil {
			t.Errorf("%v: run 'go generate ./internal/schema'", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("schemas/%s differs from internal/schema/schemas/%s: run 'go generate ./internal/schema'", in.File, in.File)
		}
	}
	extra, _ := filepath.Glob(filepath.Join(repoRoot, "schemas", "*.schema.json"))
	for _, p := range extra {
		if !known[filepath.Base(p)] {
			t.Errorf("%s has no canonical copy in internal/schema/schemas/", p)
		}
	}
}

// TestExamplesValidate validates every TOML and JSON file under examples/ whose kind is known
// by name or #:schema comment; root filesystems are data, not configuration.
func TestExamplesValidate(t *testing.T) {
	n := 0
	err := filepath.WalkDir(filepath.Join(repoRoot, "examples"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "rootfs" {
			return filepath.SkipDir
		}
		ext := filepath.Ext(p)
		if d.IsDir() || (ext != ".toml" && ext != ".json") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		k, ok := schema.KindForFile(p, data)
		if !ok {
			t.Logf("%s: no schema kind (neither #:schema nor a well-known name); skipped", p)
			return nil
		}
		n++
		if err := schema.ValidateFile(k, p); err != nil {
			t.Errorf("%v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no example file validated; examples/quickstart/otabake.toml should be")
	}
}

func TestNegativeCases(t *testing.T) {
	for _, tc := range []struct {
		name, kind, doc string
		toml            bool
		pointer, rule   string
	}{
		{"unknown key", schema.KindOtabake, "[hub]\nurll = \"x\"\n", true, "/hub/urll", "additionalProperties"},
		{"bad target", schema.KindOtabake, "[systems.a]\ntarget = \"efi\"\n", true, "/systems/a/target", "enum"},
		{"bad size", schema.KindOtabake, "[systems.a.sizes]\nboot = \"lots\"\n", true, "/systems/a/sizes/boot", "pattern"},
		{"xz preset", schema.KindOtabake, "[systems.a.bundle]\nxz_preset = 12\n", true, "/systems/a/bundle/xz_preset", "maximum"},
		{"system name", schema.KindOtabake, "[systems.\"a b\"]\n", true, "/systems/a b", "propertyNames"},
		{"agent transport", schema.KindAgent, "transport = \"carrier-pigeon\"\n", true, "/transport", "enum"},
		{"agent backoff", schema.KindAgent, "[backoff]\ninitial = \"soon\"\n", true, "/backoff/initial", "pattern"},
		{"useBundleHash string", schema.KindOTADefaults, `{"path":"r/p/stable","rugix":{"useBundleHash":"true"}}`, false, "/rugix/useBundleHash", "type"},
		{"path without tag", schema.KindOTAConfig, `{"path":"r/p"}`, false, "/path", "pattern"},
		{"status state", schema.KindOTAStatus, `{"state":"done"}`, false, "/state", "enum"},
		{"status nextAttemptAt", schema.KindOTAStatus, `{"nextAttemptAt":"tomorrow"}`, false, "/nextAttemptAt", "format"},
		{"status failureCount", schema.KindOTAStatus, `{"failureCount":-1}`, false, "/failureCount", "minimum"},
		{"build info extra", schema.KindSystemBuildInfo, `{"name":"a","release":{"id":"a@1","version":"1","arch":"x"}}`, false, "/release/arch", "additionalProperties"},
		{"build info missing", schema.KindSystemBuildInfo, `{"name":"a"}`, false, "/release", "required"},
		{"bundle hash", schema.KindBundleAssetMetadata, `{"version":"1","rugix":{"bundleHash":"sha512-256:abc"}}`, false, "/rugix/bundleHash", "pattern"},
		{"bundle version", schema.KindBundleAssetMetadata, `{}`, false, "/version", "required"},
		{"image sbom", schema.KindImageAssetMetadata, `{"relations":{"sbom":"x.spdx.json"}}`, false, "/relations/sbom", "type"},
		{"deduplication typo", schema.KindRugixBundle, "update-type = \"full\"\n[[payloads]]\nfilename = \"p\"\ndelivery = { type = \"slot\", slot = \"system\" }\n[payloads.block-encoding]\nchunker = \"casync-64\"\ndeduplication = true\n", true, "/payloads/0/block-encoding/deduplication", "additionalProperties"},
		{"slot with handler", schema.KindRugixBundle, "update-type = \"full\"\n[[payloads]]\nfilename = \"p\"\ndelivery = { type = \"slot\", slot = \"a\", handler = [\"sh\"] }\n", true, "/payloads/0/delivery/handler", "false"},
		{"execute without handler", schema.KindRugixBundle, "update-type = \"full\"\n[[payloads]]\nfilename = \"p\"\ndelivery = { type = \"execute\" }\n", true, "/payloads/0/delivery/handler", "required"},
		{"xz level", schema.KindRugixBundle, "update-type = \"full\"\n[[payloads]]\nfilename = \"p\"\ndelivery = { type = \"slot\", slot = \"a\" }\nblock-encoding = { chunker = \"fixed-4\", compression = { type = \"xz\", level = 10 } }\n", true, "/payloads/0/block-encoding/compression/level", "maximum"},
		{"pointer escaping", schema.KindOtabake, "[hub]\n\"a/b~c\" = 1\n", true, "/hub/a~1b~0c", "additionalProperties"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.toml {
				err = schema.ValidateTOML(tc.kind, []byte(tc.doc))
			} else {
				err = schema.ValidateJSON(tc.kind, []byte(tc.doc))
			}
			var se *schema.Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *schema.Error", err)
			}
			for _, v := range se.Violations {
				if v.Pointer == tc.pointer && v.Rule == tc.rule {
					if !strings.Contains(err.Error(), "at "+tc.pointer+": ") || !strings.Contains(err.Error(), "(rule "+tc.rule+")") {
						t.Errorf("message %q does not name the pointer and rule", err)
					}
					return
				}
			}
			t.Errorf("violations %+v lack pointer %s with rule %s", se.Violations, tc.pointer, tc.rule)
		})
	}
}

func TestWithout(t *testing.T) {
	doc := []byte("update-type = \"full\"\npayloads = []\nextra = 1\n")
	err := schema.ValidateTOML(schema.KindRugixBundle, doc)
	if err == nil {
		t.Fatal("extra key accepted")
	}
	if err := schema.Without(err, "additionalProperties"); err != nil {
		t.Errorf("Without(additionalProperties) = %v, want nil", err)
	}
	err = schema.ValidateTOML(schema.KindRugixBundle, []byte("update-type = \"half\"\npayloads = []\nextra = 1\n"))
	err = schema.Without(err, "additionalProperties")
	var se *schema.Error
	if !errors.As(err, &se) || len(se.Violations) != 1 || se.Violations[0].Rule != "enum" {
		t.Errorf("Without kept %v, want only the enum violation", err)
	}
	plain := errors.New("parse")
	if schema.Without(plain, "enum") != plain {
		t.Error("Without changed a non-schema error")
	}
}

func TestValidateFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, file, data, kind, wantErr string
	}{
		{"toml ok", "otabake.toml", "#:schema https://otabake.dev/schemas/otabake.schema.json\n[hub]\ndefault_tag = \"stable\"\n", schema.KindOtabake, ""},
		{"json ok", "ota.json", `{"path":"r/p/stable","rugix":{"useBundleHash":true}}`, schema.KindOTADefaults, ""},
		{"directive mismatch", "x.toml", "#:schema ../schemas/agent.schema.json\n", schema.KindOtabake, "names agent, not otabake"},
		{"toml syntax", "bad.toml", "[hub\n", schema.KindOtabake, "parse TOML"},
		{"json syntax", "bad.json", `{"path":`, schema.KindOTADefaults, "parse JSON"},
		{"trailing json", "two.json", `{} {}`, schema.KindOTADefaults, "parse JSON"},
		{"unknown kind", "k.json", `{}`, "nope", "unknown schema kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(tc.file, tc.data)
			err := schema.ValidateFile(tc.kind, p)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
	big := write("big.json", strings.Repeat(" ", schema.MaxDocumentSize+1))
	if err := schema.ValidateFile(schema.KindOTADefaults, big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestKindForFile(t *testing.T) {
	for _, tc := range []struct {
		path, data, want string
	}{
		{"x/otabake.toml", "", schema.KindOtabake},
		{"etc/otabake/agent.toml", "", schema.KindAgent},
		{"etc/otabake/ota.json", "{}", schema.KindOTADefaults},
		{"b/rugix-bundle.toml", "", schema.KindRugixBundle},
		{"build/a/system-build-info.json", "", schema.KindSystemBuildInfo},
		{"any.toml", "# comment\n\n#:schema https://otabake.dev/schemas/agent.schema.json\nengine = \"rugix\"\n", schema.KindAgent},
		{"any.toml", "engine = \"rugix\"\n#:schema https://otabake.dev/schemas/agent.schema.json\n", ""},
		{"any.toml", "#:schema https://example.com/other.schema.json\n", ""},
		{"any.json", "{}", ""},
	} {
		got, ok := schema.KindForFile(tc.path, []byte(tc.data))
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("KindForFile(%s, %q) = %q, %v; want %q", tc.path, tc.data, got, ok, tc.want)
		}
	}
}

func FuzzValidateTOML(f *testing.F) {
	f.Add([]byte("[hub]\nurl = \"https://eu.nexigon.cloud\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range []string{schema.KindOtabake, schema.KindRugixBundle, schema.KindAgent} {
			err := schema.ValidateTOML(k, data)
			var se *schema.Error
			if errors.As(err, &se) && len(se.Violations) == 0 {
				t.Fatalf("%s: schema error without violations", k)
			}
		}
	})
}

func FuzzValidateJSON(f *testing.F) {
	f.Add([]byte(`{"path":"r/p/stable","rugix":{"useBundleHash":true}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range []string{schema.KindOTAStatus, schema.KindBundleAssetMetadata, schema.KindSystemBuildInfo} {
			err := schema.ValidateJSON(k, data)
			var se *schema.Error
			if errors.As(err, &se) {
				for _, v := range se.Violations {
					if v.Rule == "" || v.Message == "" {
						t.Fatalf("%s: incomplete violation %+v", k, v)
					}
				}
			}
		}
	})
}
