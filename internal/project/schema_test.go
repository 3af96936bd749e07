package project

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadSchemaFallback checks that what the loader's own checks do not cover is still caught
// by the otabake.toml schema, with the file name and the JSON pointer in the message.
func TestLoadSchemaFallback(t *testing.T) {
	for _, tc := range []struct {
		name, toml, want string
	}{
		{"valid", "#:schema https://otabake.dev/schemas/otabake.schema.json\n[systems.a]\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\nrootfs = \"r\"\n[systems.a.signing]\nkey = \"k.pem\"\ncert = \"c.pem\"\npassword_env = \"KEY_PASSWORD\"\n", ""},
		{"empty chain entry", "[systems.a]\ntarget = \"efi-grub\"\narchitecture = \"amd64\"\nrootfs = \"r\"\n[systems.a.signing]\nkey = \"k.pem\"\ncert = \"c.pem\"\nchain = [\"\"]\n", "otabake.toml: does not match the otabake schema: at /systems/a/signing/chain/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(tc.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir, LoadOptions{Env: []string{}})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
