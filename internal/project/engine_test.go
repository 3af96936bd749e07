package project

import (
	"testing"

	"github.com/otabake/otabake/internal/agent/engine"
)

// TestEnginesAreAgentEngines keeps the engine names of otabake.toml those otabake-agent knows.
func TestEnginesAreAgentEngines(t *testing.T) {
	for _, name := range Engines() {
		e, err := engine.New(name, nil)
		if err != nil {
			t.Fatalf("engine %q: %v", name, err)
		}
		if e.Name() != name {
			t.Errorf("engine.New(%q).Name() = %q", name, e.Name())
		}
	}
}
