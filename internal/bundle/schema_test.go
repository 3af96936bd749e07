package bundle

import (
	"strings"
	"testing"
)

// TestManifestSchemaFallback checks the rugix-bundle.toml schema behind parseManifest's own
// checks: what they miss is an error with the JSON pointer, unknown keys stay warnings.
func TestManifestSchemaFallback(t *testing.T) {
	const hash = "sha512-256:0000000000000000000000000000000000000000000000000000000000000000"
	for _, tc := range []struct {
		name, toml, wantErr, wantWarning string
	}{
		{"deduplication stays a warning", "update-type = \"full\"\n[[payloads]]\nfilename = \"p\"\ndelivery = { type = \"slot\", slot = \"system\" }\n[payloads.block-encoding]\nchunker = \"casync-64\"\ndeduplication = true\n", "", `"deduplicate"`},
		{"delta without inputs", "update-type = \"incremental\"\n[[payloads]]\nfilename = \"p\"\ndelivery = { type = \"slot\", slot = \"system\" }\n[payloads.delta-encoding]\nformat = \"xdelta\"\noriginal-hash = \"" + hash + "\"\n", "at /payloads/0/delta-encoding/inputs: missing property 'inputs' (rule required)", ""},
		{"empty payload list", "update-type = \"full\"\npayloads = []\n", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, warnings, err := parseManifest([]byte(tc.toml), "/nonexistent")
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if tc.wantWarning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.wantWarning)) {
				t.Fatalf("warnings = %q, want one with %q", warnings, tc.wantWarning)
			}
		})
	}
}
