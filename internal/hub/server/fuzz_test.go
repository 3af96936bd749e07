package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/hub/local"
)

// FuzzActionInput sends arbitrary bodies to every action: the answer is always 200 with JSON
// output or a 4xx ActionError, never a panic or an Internal error.
func FuzzActionInput(f *testing.F) {
	names := make([]string, 0, len(actions))
	for n := range actions {
		names = append(names, n)
	}
	sort.Strings(names)
	f.Add(uint8(0), []byte(`{}`))
	f.Add(uint8(3), []byte(`{"repository":"repo","package":"pkg","tag":"latest"}`))
	f.Add(uint8(7), []byte(`{"packageId":null,"tags":[{"tag":"x","reassign":null}]}`))
	f.Add(uint8(11), []byte(`{"repositoryId":"repo_x","size":-1,"digest":"sha256_00"}`))
	f.Add(uint8(20), []byte(`{"deviceId":"d_1","events":[{"severity":"Info","body":null}]}`))

	store, err := local.Open(f.TempDir(), local.Options{})
	if err != nil {
		f.Fatal(err)
	}
	if _, _, err := store.Init(f.Context(), "repo", "pkg"); err != nil {
		f.Fatal(err)
	}
	h, err := New(Config{Store: store, Token: testToken, BaseURL: "http://127.0.0.1:1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		name := names[int(which)%len(names)]
		req := httptest.NewRequest(http.MethodPost, "/api/v1/actions/invoke/"+name, strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 && (rec.Code < 400 || rec.Code >= 500) {
			t.Fatalf("%s(%q): status %d: %s", name, body, rec.Code, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s(%q): body is not JSON: %q", name, body, rec.Body)
		}
	})
}
