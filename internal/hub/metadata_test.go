package hub_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/schema"
)

const testHash = "sha512-256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestMetadataWire pins the bytes upload-release and prepare-release have always written.
func TestMetadataWire(t *testing.T) {
	rel := &hub.AssetRelations{SBOM: []string{"efi.spdx.json"}}
	for _, tc := range []struct {
		v    any
		want string
	}{
		{hub.VersionMetadata{ImageVersion: "build-1"}, `{"imageVersion":"build-1"}`},
		{hub.VersionMetadata{ImageVersion: "build-1", Otabake: &hub.VersionRecord{Systems: []string{"efi"}, Assets: map[string][]string{"efi": {"efi.rugixb"}}}},
			`{"imageVersion":"build-1","otabake":{"systems":["efi"],"assets":{"efi":["efi.rugixb"]}}}`},
		{hub.BundleAssetMetadata{Rugix: &hub.RugixBundleMetadata{BundleHash: testHash}, Relations: rel, Version: "build-1"},
			`{"rugix":{"bundleHash":"` + testHash + `"},"relations":{"sbom":["efi.spdx.json"]},"version":"build-1"}`},
		{hub.BundleAssetMetadata{Rugix: &hub.RugixBundleMetadata{BundleHash: testHash}, Version: "build-1"},
			`{"rugix":{"bundleHash":"` + testHash + `"},"version":"build-1"}`},
		{hub.BundleAssetMetadata{Version: "build-1"}, `{"version":"build-1"}`},
		{hub.ImageAssetMetadata{Relations: rel}, `{"relations":{"sbom":["efi.spdx.json"]}}`},
	} {
		got, err := json.Marshal(tc.v)
		if err != nil || string(got) != tc.want {
			t.Errorf("%T: %s, %v; want %s", tc.v, got, err, tc.want)
		}
	}
}

// TestMetadataMatchesSchemas validates each asset metadata type, with every field set and with
// the least upload-release writes, against its JSON Schema in schemas/, and checks that every
// property the schema requires, and every property it allows, is a field of the type, and the
// other way round.
func TestMetadataMatchesSchemas(t *testing.T) {
	rel := &hub.AssetRelations{SBOM: []string{"efi.spdx.json"}}
	for _, tc := range []struct {
		kind string
		typ  reflect.Type
		docs []any
	}{
		{schema.KindBundleAssetMetadata, reflect.TypeOf(hub.BundleAssetMetadata{}), []any{
			hub.BundleAssetMetadata{Rugix: &hub.RugixBundleMetadata{BundleHash: testHash}, Relations: rel, Version: "build-1"},
			hub.BundleAssetMetadata{Version: "build-1"},
		}},
		{schema.KindImageAssetMetadata, reflect.TypeOf(hub.ImageAssetMetadata{}), []any{
			hub.ImageAssetMetadata{Relations: rel},
			hub.ImageAssetMetadata{},
		}},
		{schema.KindVersionMetadata, reflect.TypeOf(hub.VersionMetadata{}), []any{
			hub.VersionMetadata{ImageVersion: "build-1"},
			hub.VersionMetadata{ImageVersion: "build-1", Otabake: &hub.VersionRecord{Systems: []string{"efi"}, Assets: map[string][]string{"efi": {"efi.img.xz", "efi.rugixb"}}}},
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			for _, d := range tc.docs {
				data, err := json.Marshal(d)
				if err != nil {
					t.Fatal(err)
				}
				if err := schema.ValidateJSON(tc.kind, data); err != nil {
					t.Errorf("%s: %v", data, err)
				}
			}
			root := loadSchema(t, tc.kind)
			compareObject(t, tc.kind, root, root, tc.typ)
		})
	}
	// A wrong value is refused, so the validation above is not vacuous.
	bad, _ := json.Marshal(hub.BundleAssetMetadata{Rugix: &hub.RugixBundleMetadata{BundleHash: "sha512-256:abc"}})
	if err := schema.ValidateJSON(schema.KindBundleAssetMetadata, bad); err == nil {
		t.Errorf("%s validates", bad)
	}
	if bad, _ := json.Marshal(hub.VersionMetadata{}); schema.ValidateJSON(schema.KindVersionMetadata, bad) == nil {
		t.Errorf("%s validates: a version without imageVersion", bad)
	}
}

func loadSchema(t *testing.T, kind string) map[string]any {
	t.Helper()
	src, err := schema.Source(kind)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(src, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// resolve follows a $ref to a schema of schemas/ (#/$defs/… in root, or <$id>#/$defs/…).
func resolve(t *testing.T, root, node map[string]any) (map[string]any, map[string]any) {
	ref, ok := node["$ref"].(string)
	if !ok {
		return root, node
	}
	doc, frag, _ := strings.Cut(ref, "#")
	if doc != "" {
		kind, ok := schema.KindOfID(doc)
		if !ok {
			t.Fatalf("$ref %s names no schema of schemas/", ref)
		}
		root = loadSchema(t, kind)
	}
	n := any(root)
	for _, p := range strings.Split(strings.Trim(frag, "/"), "/") {
		if p == "" {
			continue
		}
		n = n.(map[string]any)[p]
	}
	return root, n.(map[string]any)
}

// compareObject checks that the properties of an object schema are the JSON fields of typ,
// that every required one is, and recurses into object-valued properties.
func compareObject(t *testing.T, where string, root, node map[string]any, typ reflect.Type) {
	root, node = resolve(t, root, node)
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
	}
	if typ.Kind() == reflect.Map {
		// An object of arbitrary keys: its additionalProperties schema describes the values.
		if _, ok := node["properties"]; ok {
			t.Errorf("%s: the schema names properties, %s is a map", where, typ)
		}
		if v, ok := node["additionalProperties"].(map[string]any); !ok {
			t.Errorf("%s: %s is a map, the schema has no additionalProperties schema", where, typ)
		} else if _, vn := resolve(t, root, v); vn["type"] == "object" {
			compareObject(t, where+"/*", root, v, typ.Elem())
		}
		return
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	props, _ := node["properties"].(map[string]any)
	req, _ := node["required"].([]any)
	for _, r := range req {
		if _, ok := fields[r.(string)]; !ok {
			t.Errorf("%s: the schema requires %q, %s has no such field", where, r, typ)
		}
	}
	for name := range fields {
		if _, ok := props[name]; !ok {
			t.Errorf("%s: %s has field %q, the schema has no such property", where, typ, name)
		}
	}
	for name, p := range props {
		ft, ok := fields[name]
		if !ok {
			t.Errorf("%s: the schema has property %q, %s has no such field", where, name, typ)
			continue
		}
		_, pn := resolve(t, root, p.(map[string]any))
		if pn["type"] == "object" {
			compareObject(t, where+"/"+name, root, p.(map[string]any), ft)
		} else if items, ok := pn["items"].(map[string]any); ok && pn["type"] == "array" && items["type"] == "object" {
			compareObject(t, where+"/"+name, root, items, ft)
		}
	}
}
