package project

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretRedacts(t *testing.T) {
	const value = "org_sk_hunter2"
	s := Secret(value)
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("hub", "token", s, "hub", Hub{Token: s})
	js, _ := json.Marshal(map[string]any{"t": s, "h": Hub{Token: s}})
	text, _ := s.MarshalText()
	for _, out := range []string{
		fmt.Sprintf("%s|%v|%+v|%#v|%q|%x|%X|%d", s, s, s, s, s, s, s, s),
		fmt.Sprint(s, Hub{Token: s}, &Hub{Token: s}),
		fmt.Sprintf("%+v %#v", Hub{Token: s}, Hub{Token: s}),
		s.String(), string(js), string(text), logBuf.String(),
	} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("leak: %s", out)
		}
		if !strings.Contains(out, "redacted") {
			t.Errorf("no redaction marker: %s", out)
		}
	}
	if s.Reveal() != value {
		t.Errorf("Reveal = %q", s.Reveal())
	}
	var empty Secret
	if empty.String() != "" || fmt.Sprint(empty) != "" {
		t.Errorf("empty secret prints %q", empty.String())
	}
	if b, _ := json.Marshal(empty); string(b) != `""` {
		t.Errorf("empty JSON = %s", b)
	}
}
