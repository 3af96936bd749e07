package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSchemaCommands(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("otabake.toml", "[systems.a]\ntarget = \"efi-grub\"\n")
	bad := write("bad.toml", "#:schema https://otabake.dev/schemas/otabake.schema.json\n[systems.a]\ntarget = \"efi\"\n")
	status := write("status.json", `{"state":"done"}`)
	plain := write("plain.json", `{}`)

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   string // substring
		stderr   string // substring
		jsonBody bool
	}{
		{"list", []string{"schema", "list"}, 0, "dev.nexigon.ota.status", "", false},
		{"show", []string{"schema", "show", "system-build-info"}, 0, `"$id": "https://otabake.dev/schemas/system-build-info.schema.json"`, "", false},
		{"show unknown", []string{"schema", "show", "nope"}, 1, "", "unknown schema kind", false},
		{"valid by name", []string{"schema", "validate", good}, 0, "valid otabake", "", false},
		{"valid with kind", []string{"schema", "validate", "otabake", good}, 0, "valid otabake", "", false},
		{"invalid by directive", []string{"schema", "validate", bad}, 1, "/systems/a/target: value must be one of", "1 schema violation(s) of otabake", false},
		{"invalid json", []string{"schema", "validate", "dev.nexigon.ota.status", status, "--json"}, 1, `"pointer": "/state"`, "", true},
		{"global json", []string{"--json", "schema", "validate", "otabake", good}, 0, `"valid": true`, "", true},
		{"no kind", []string{"schema", "validate", plain}, 1, "", "give the KIND", false},
		{"missing file", []string{"schema", "validate", "otabake", filepath.Join(dir, "none.toml")}, 1, "", "no such file", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q", code, out, errOut, tc.code, tc.stdout, tc.stderr)
			}
			if tc.jsonBody {
				var v map[string]any
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Fatalf("stdout is not one JSON document: %v\n%s", err, out)
				}
			}
		})
	}
}
