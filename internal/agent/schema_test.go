package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSchemaChecksOnRead checks that agent.toml and ota.json are validated against their
// schemas, so a mistyped value is an error naming the file and the JSON pointer.
func TestSchemaChecksOnRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"agent.toml", "#:schema https://otabake.dev/schemas/agent.schema.json\nengine = \"rugix\"\ntransport = \"hub\"\n[backoff]\ninitial = \"1h30m\"\n", ""},
		{"agent.toml", "transport = \"carrier-pigeon\"\n", "at /transport: value must be one of"},
		{"ota.json", `{"path":"repo/pkg/stable","rugix":{"useBundleHash":true},"custom":1}`, ""},
		{"ota.json", `{"path":"repo/pkg/stable","rugix":{"useBundleHash":"yes"}}`, "at /rugix/useBundleHash: got string, want boolean"},
		{"ota.json", `{"path":"repo/pkg"}`, "at /path:"},
	} {
		p := write(tc.name, tc.data)
		var err error
		if tc.name == "agent.toml" {
			_, err = LoadSettings(p)
		} else {
			_, err = loadDefaults(p)
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %s: %v", tc.name, tc.data, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p)):
			t.Errorf("%s %s: error %v, want the path and %q", tc.name, tc.data, err, tc.want)
		}
	}
}
