package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/schema"
)

// TestChecksOnRead checks that agent.toml and ota.json are checked on read with an error that
// names the file, the key and what was wrong, and that every document the agent accepts or
// rejects is accepted or rejected alike by the JSON Schema otabake publishes for it. The agent
// checks by hand (the validator is too big for device binaries); this keeps the two in step.
func TestChecksOnRead(t *testing.T) {
	dir := t.TempDir()
	for i, tc := range []struct {
		name, data string
		want       string // "" for a valid document, else part of the error
		agentOnly  bool   // rejected by the agent but allowed by the schema
	}{
		{name: "agent.toml", data: "#:schema https://otabake.dev/schemas/agent.schema.json\nengine = \"rugix\"\ntransport = \"hub\"\n[backoff]\ninitial = \"1h30m\"\n"},
		{name: "agent.toml", data: ""},
		{name: "agent.toml", data: "engine = \"rauc\"\ntransport = \"nexigon-cli\"\nsocket-path = \"/run/s.sock\"\nnexigon-agent = \"na\"\n[hub]\nurl = \"https://hub.example\"\ntoken-file = \"/etc/t\"\ndevice-id = \"d_1\"\n[backoff]\nmax = \"24h\"\n"},
		{name: "agent.toml", data: "transport = \"carrier-pigeon\"\n", want: `transport = "carrier-pigeon": want auto, nexigon-socket, nexigon-cli or hub`},
		{name: "agent.toml", data: "engine = \"swupdate\"\n", want: `engine = "swupdate": want rugix or rauc`},
		{name: "agent.toml", data: "engine = 1\n", want: `engine`},
		{name: "agent.toml", data: "colour = \"blue\"\n", want: "unknown key colour"},
		{name: "agent.toml", data: "[hub]\nport = 8080\n", want: "unknown key hub.port"},
		{name: "agent.toml", data: "hub = \"x\"\n", want: "hub"},
		{name: "agent.toml", data: "socket-path = \"run/s.sock\"\n", want: `socket-path = "run/s.sock": want an absolute path`},
		{name: "agent.toml", data: "nexigon-agent = \"\"\n", want: "nexigon-agent is empty"},
		{name: "agent.toml", data: "[hub]\nurl = \"ftp://hub\"\n", want: `hub.url = "ftp://hub": want an http:// or https:// URL`},
		{name: "agent.toml", data: "[hub]\ntoken-file = \"\"\n", want: "hub.token-file is empty"},
		{name: "agent.toml", data: "[hub]\ndevice-id = \"\"\n", want: "hub.device-id is empty"},
		{name: "agent.toml", data: "[backoff]\ninitial = \"soon\"\n", want: `backoff.initial "soon": want a positive duration`},
		{name: "agent.toml", data: "[backoff]\nmax = \"-1h\"\n", want: `backoff.max "-1h": want a positive duration`},
		{name: "agent.toml", data: "[backoff]\nmax = \"+1h\"\n", want: `backoff.max "+1h": want a positive duration`},
		{name: "agent.toml", data: "[backoff]\ninitial = \"0s\"\n", want: `backoff.initial "0s": want a positive duration`, agentOnly: true},

		{name: "ota.json", data: `{"path":"repo/pkg/stable","rugix":{"useBundleHash":true},"custom":1}`},
		{name: "ota.json", data: `{"path":"r.1/p_2/t-3","defer":{"file":"/run/hold","inhibitor":"kiosk","x":[]},"rugix":{"other":"kept"}}`},
		{name: "ota.json", data: ``},
		{name: "ota.json", data: `{"path":"repo/pkg/stable","rugix":{"useBundleHash":"yes"}}`, want: "rugix.useBundleHash: got a string, want a boolean"},
		{name: "ota.json", data: `{"rugix":{"useBundleHash":null}}`, want: "rugix.useBundleHash: got null, want a boolean"},
		{name: "ota.json", data: `{"path":"repo/pkg"}`, want: `path "repo/pkg": want <repository>/<package>/<tag>`},
		{name: "ota.json", data: `{"path":"repo/pkg/.tag"}`, want: `path "repo/pkg/.tag"`},
		{name: "ota.json", data: `{"path":"repo/pkg/` + strings.Repeat("t", 129) + `"}`, want: "path"},
		{name: "ota.json", data: `{"path":7}`, want: "path: got a number, want a string"},
		{name: "ota.json", data: `{"rugix":true}`, want: "rugix: got a boolean, want an object"},
		{name: "ota.json", data: `{"defer":"later"}`, want: "defer: got a string, want an object"},
		{name: "ota.json", data: `{"defer":{"file":"run/hold"}}`, want: `defer.file "run/hold": want an absolute path`},
		{name: "ota.json", data: `{"defer":{"file":["/a"]}}`, want: "defer.file: got an array, want a string"},
		{name: "ota.json", data: `{"defer":{"inhibitor":""}}`, want: "defer.inhibitor is empty"},
		{name: "ota.json", data: `{"defer":{"inhibitor":{}}}`, want: "defer.inhibitor: got an object, want a string"},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.data), 0o644); err != nil {
			t.Fatal(err)
		}
		var err, schemaErr error
		if tc.name == "agent.toml" {
			_, err = LoadSettings(p)
			schemaErr = schema.ValidateTOML(schema.KindAgent, []byte(tc.data))
		} else {
			_, err = loadDefaults(p)
			if strings.TrimSpace(tc.data) != "" {
				schemaErr = schema.ValidateJSON(schema.KindOTADefaults, []byte(tc.data))
			}
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d %s %q: %v", i, tc.name, tc.data, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p)):
			t.Errorf("%d %s %q: error %v, want the path and %q", i, tc.name, tc.data, err, tc.want)
		}
		if schemaAccepts := schemaErr == nil; schemaAccepts != (tc.want == "" || tc.agentOnly) {
			t.Errorf("%d %s %q: the schema says %v, the agent says %v", i, tc.name, tc.data, schemaErr, err)
		}
	}
}
