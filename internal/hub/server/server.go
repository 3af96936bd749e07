// Package server exposes a local Hub store over the Nexigon Hub HTTP actions API
// (POST /api/v1/actions/invoke/{action}), with presigned, expiring, range-capable blob URLs in
// place of S3, so that the Go Hub client, the device agent and any HTTP client can use the
// local Hub exactly like the real one.
package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/hub/local"
	"github.com/otabake/otabake/internal/logging"
)

// Config configures the HTTP server around a local store.
type Config struct {
	// Store is the local Hub the server exposes.
	Store *local.Store
	// Token is the bearer token every action call must present. It is required.
	Token string
	// BaseURL is the public base of the server (for example http://127.0.0.1:8470); issued
	// upload and download URLs start with it. Empty means the base the client used (its
	// request's Host), so that the host and a VM behind QEMU's user network (which reaches the
	// host as 10.0.2.2) each get URLs they can reach.
	BaseURL string
	// URLKey signs issued blob URLs. When empty a random key is used, so that URLs do not
	// survive a restart.
	URLKey []byte
	// URLTTL is how long an issued URL stays valid. Zero means one hour.
	URLTTL time.Duration
	// Log receives one line per request (never tokens or URL signatures). Nil discards.
	Log *slog.Logger
	// Limits bound clients; the handler uses IOTimeout and MaxInputBytes, NewHTTPServer and
	// LimitListener the rest. Zero fields take their defaults.
	Limits Limits
}

// maxInput is the Hub's limit on an action's input (spec §1.1).
const maxInput = 8 << 20

// maxActionName is the Hub's limit on an action name.
const maxActionName = 255

type server struct {
	store   *local.Store
	token   []byte
	baseURL string
	key     []byte
	ttl     time.Duration
	log     *slog.Logger
	now     func() time.Time
	limits  Limits
}

// New returns the HTTP handler of the local Hub server.
func New(cfg Config) (http.Handler, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	return s.routes(), nil
}

func newServer(cfg Config) (*server, error) {
	if cfg.Store == nil {
		return nil, errors.New("hub server: no store")
	}
	if cfg.Token == "" {
		return nil, errors.New("hub server: a bearer token is required")
	}
	if _, err := checkServerToken(cfg.Token); err != nil {
		return nil, err
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("hub server: base URL %q: want http(s)://host[:port][/path]", cfg.BaseURL)
		}
	}
	s := &server{
		store:   cfg.Store,
		token:   []byte(cfg.Token),
		baseURL: strings.TrimSuffix(cfg.BaseURL, "/"),
		key:     cfg.URLKey,
		ttl:     cfg.URLTTL,
		log:     cfg.Log,
		now:     time.Now,
		limits:  cfg.Limits.WithDefaults(),
	}
	if len(s.key) == 0 {
		s.key = make([]byte, 32)
		rand.Read(s.key)
	}
	if s.ttl <= 0 {
		s.ttl = time.Hour
	}
	if s.log == nil {
		s.log = logging.Discard()
	}
	return s, nil
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/actions/invoke/{action}", s.handleAction)
	mux.HandleFunc(blobPrefix+"{asset}", s.handleBlob)
	mux.HandleFunc(wsPath, s.handleWS) // the real nexigon-cli and agent (ws.go)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, hub.Errorf(hub.KindInvalid, "no such endpoint %s", r.URL.Path))
	})
	return progressDeadlines(s.logRequests(mux), s.limits.IOTimeout)
}

// statusWriter remembers the status code for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs method, path (never the query, which holds URL signatures), status and
// duration.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", time.Since(start).Round(time.Microsecond)}
		if rg := r.Header.Get("Range"); rg != "" {
			attrs = append(attrs, "range", rg)
		}
		s.log.Debug("request", attrs...)
	})
}

// authorized reports whether the request carries the server's token (see authenticate).
func (s *server) authorized(r *http.Request) bool { return s.authenticate(r) == nil }

func (s *server) handleAction(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, hub.Errorf(hub.KindInvalid, "actions are invoked with POST, not %s", r.Method))
		return
	}
	if ae := s.authenticate(r); ae != nil {
		writeError(w, 0, ae)
		return
	}
	name := r.PathValue("action")
	act, ok := actions[name]
	if !ok {
		if len(name) > maxActionName {
			name = name[:maxActionName] + "…"
		}
		writeError(w, http.StatusNotFound, hub.Errorf(hub.KindInvalid, "unknown action %q", name))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.limits.MaxInputBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, hub.Errorf(hub.KindInvalid, "%s: input is larger than %d bytes", name, s.limits.MaxInputBytes))
			return
		}
		writeError(w, http.StatusBadRequest, hub.Errorf(hub.KindInvalid, "%s: read input: %v", name, err))
		return
	}
	base := s.publicBase(r)
	out, err := act(context.WithValue(r.Context(), baseURLKey{}, base), s, body)
	if err != nil {
		s.writeActionError(w, name, err)
		return
	}
	data, err := json.Marshal(out)
	if err != nil {
		s.writeActionError(w, name, fmt.Errorf("encode output: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(data)
}

// baseURLKey carries the base URL of issued blob URLs from an action request to the action.
type baseURLKey struct{}

// writeActionError answers with the ActionError inside err, or Internal for anything else.
func (s *server) writeActionError(w http.ResponseWriter, action string, err error) {
	var ae *hub.ActionError
	if errors.As(err, &ae) {
		writeError(w, 0, &hub.ActionError{Kind: ae.Kind, Message: ae.Message})
		return
	}
	if errors.Is(err, context.Canceled) {
		writeError(w, http.StatusServiceUnavailable, hub.Errorf(hub.KindInternal, "%s: request cancelled", action))
		return
	}
	s.log.Error("action failed", "action", action, "err", err)
	writeError(w, 0, hub.Errorf(hub.KindInternal, "%s: %v", action, err))
}

// statusOf maps an ActionError kind to an HTTP status; clients key on the body's kind.
func statusOf(k hub.ErrorKind) int {
	switch k {
	case hub.KindInvalid:
		return http.StatusBadRequest
	case hub.KindForbidden:
		return http.StatusForbidden
	case hub.KindRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// writeError writes an ActionError body; status 0 derives the status from the kind.
func writeError(w http.ResponseWriter, status int, ae *hub.ActionError) {
	if status == 0 {
		status = statusOf(ae.Kind)
	}
	data, _ := json.Marshal(ae)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(data)
}

// publicBase is the base of the URLs the server issues: --base-url, else the address the client
// used (a VM reaches the host as 10.0.2.2, not as the listen address).
func (s *server) publicBase(r *http.Request) string {
	if s.baseURL != "" {
		return s.baseURL
	}
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}
