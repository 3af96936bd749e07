// Package nexigon is the HTTP client of the Nexigon Hub actions API
// (POST {hub}/api/v1/actions/invoke/<action>, spec §1.1). It implements hub.Hub against a real
// Hub and against `otabake hub serve`, which speaks the same API.
//
// Every call is retried on network errors, 429 and 5xx with capped, fully jittered
// exponential backoff that honours Retry-After; other 4xx fail at once. Actions that are not
// idempotent (repositories_CreateVersion, devices_PublishEvents) are retried only when the
// Hub cannot have acted on the request: the request was never fully written, or the Hub
// answered 429 or 503. Otherwise the error wraps ErrOutcomeUnknown and the caller decides;
// the release code resolves the version path (by its unique locked build tag) before creating,
// so re-running prepare-release after such an error finds and reuses the version instead of
// creating a second one.
//
// Every ID in an answer (repositoryId, packageId, versionId, assetId, eventId, the actor's
// IDs) is checked against the Hub's ID table (internal/nexid) where the answer is decoded, in
// one helper (checkIDs): a malformed or wrong-kind ID is an error naming the action, the field
// and the kind wanted, never the value.
//
// The bearer token is sent only in the Authorization header. It never appears in errors or log
// records: URLs carry no credentials, and errors from net/http are rebuilt with the
// user-info-free URL.
package nexigon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/logging"
)

// MaxResponseSize bounds how much of a response body is read: the Hub's RPC output limit
// (spec §1.1). A larger body is an error rather than unbounded memory.
const MaxResponseSize = 8 << 20

// DefaultTimeout is the per-attempt timeout of an action call.
const DefaultTimeout = 60 * time.Second

// ErrOutcomeUnknown is wrapped by errors of non-idempotent actions whose request may have
// reached the Hub (the connection broke after the request was sent, or a gateway timed out).
// The action may or may not have been applied; callers resolve before retrying by hand.
var ErrOutcomeUnknown = errors.New("the Hub may have applied the action")

// Client calls the Nexigon Hub actions API. It is safe for concurrent use.
type Client struct {
	base    string // scheme://host[/prefix] without a trailing slash
	display string // base with any user info removed, for errors
	token   string
	http    *http.Client
	timeout time.Duration
	retry   hub.RetryPolicy
	log     *slog.Logger
}

var _ hub.Hub = (*Client)(nil)

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (for proxies, custom TLS roots, or tests).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithTimeout sets the per-attempt timeout of an action call (default 60 s).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithRetry sets the retry policy (zero fields take the hub.RetryPolicy defaults).
func WithRetry(p hub.RetryPolicy) Option { return func(c *Client) { c.retry = p } }

// WithLogger sets the logger for retries and request debugging (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// New returns a client for the Hub at baseURL (for example https://eu.nexigon.cloud) that
// authenticates with token. The URL must be http or https and carry no query or user info,
// so that nothing secret can end up in a logged URL.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("hub URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("hub URL %q: want http(s)://host[/prefix]", u.Redacted())
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("hub URL %q: must not contain user info, a query or a fragment", u.Redacted())
	}
	if token == "" {
		return nil, errors.New("hub token is empty")
	}
	if strings.ContainsAny(token, "\r\n") {
		return nil, errors.New("hub token contains a line break")
	}
	base := strings.TrimRight(u.String(), "/")
	c := &Client{
		base:    base,
		display: base,
		token:   token,
		http:    http.DefaultClient,
		timeout: DefaultTimeout,
		log:     logging.Discard(),
	}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if c.log == nil {
		c.log = logging.Discard()
	}
	return c, nil
}

// BaseURL returns the Hub URL the client talks to.
func (c *Client) BaseURL() string { return c.display }

// nonIdempotent are the actions that must not be blindly repeated: a second CreateVersion
// makes a second version (or fails on the locked tag), a second PublishEvents duplicates
// events. Every other action is a read, content-addressed (CreateAsset), or reports its
// repetition as a result (CreatePackage, AddVersionAsset).
var nonIdempotent = map[string]bool{
	"repositories_CreateVersion": true,
	"devices_PublishEvents":      true,
}

// Invoke calls action with input (marshalled to JSON) and decodes the 2xx body into output
// (which may be nil). A non-2xx answer is an *hub.ActionError with Action and Status set, or a
// plain error quoting the status and the first bytes when the body is not an ActionError.
func (c *Client) Invoke(ctx context.Context, action string, input, output any) error {
	body, err := json.Marshal(input)
	if err != nil {
		return fmt.Errorf("%s: encode request: %w", action, err)
	}
	policy := c.retry
	user := policy.OnRetry
	policy.OnRetry = func(attempt int, delay time.Duration, err error) {
		c.log.LogAttrs(ctx, slog.LevelInfo, "retrying hub action", slog.String("action", action),
			slog.Int("attempt", attempt), slog.Duration("delay", delay), slog.String("error", err.Error()))
		if user != nil {
			user(attempt, delay, err)
		}
	}
	var resp []byte
	err = policy.Do(ctx, func(int) error {
		var err error
		resp, err = c.attempt(ctx, action, body)
		return err
	})
	if err != nil {
		return err
	}
	if output == nil {
		// Empty-output actions answer {}; tolerate an empty body, reject garbage.
		if len(bytes.TrimSpace(resp)) == 0 || json.Valid(resp) {
			return nil
		}
		return fmt.Errorf("%s: response is not JSON (body starts %q)", action, prefix(c.redact(resp)))
	}
	if err := json.Unmarshal(resp, output); err != nil {
		return fmt.Errorf("%s: decode response: %w (body starts %q)", action, err, prefix(c.redact(resp)))
	}
	return nil
}

// attempt makes one HTTP request. Transient failures come back as *hub.RetryableError.
func (c *Client) attempt(ctx context.Context, action string, body []byte) ([]byte, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var wrote atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	})
	endpoint := c.base + "/api/v1/actions/invoke/" + url.PathEscape(action)
	req, err := http.NewRequestWithContext(actx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", action, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		err = c.scrub(action, err)
		if ctx.Err() != nil {
			return nil, err // the caller gave up; do not retry
		}
		if nonIdempotent[action] && wrote.Load() {
			return nil, fmt.Errorf("%w: %w", err, ErrOutcomeUnknown)
		}
		return nil, hub.Retryable(err, 0)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, MaxResponseSize+1))
	if err != nil {
		err = c.scrub(action, fmt.Errorf("read response (HTTP %d): %w", res.StatusCode, err))
		if ctx.Err() != nil {
			return nil, err
		}
		if nonIdempotent[action] {
			return nil, fmt.Errorf("%w: %w", err, ErrOutcomeUnknown)
		}
		return nil, hub.Retryable(err, 0)
	}
	if len(data) > MaxResponseSize {
		return nil, fmt.Errorf("%s: HTTP %d: response larger than %d bytes", action, res.StatusCode, MaxResponseSize)
	}
	if res.StatusCode >= 200 && res.StatusCode <= 299 {
		return data, nil
	}
	aerr := DecodeError(action, res.StatusCode, c.redact(data))
	if ae, ok := aerr.(*hub.ActionError); ok {
		// A Hub (or a man in the middle) that echoes the token, even JSON-escaped, does not
		// get it into an error.
		ae.Kind = hub.ErrorKind(c.redact([]byte(ae.Kind)))
		ae.Message = string(c.redact([]byte(ae.Message)))
	}
	retry := hub.RetryableStatus(res.StatusCode) || hub.IsKind(aerr, hub.KindRateLimited)
	if !retry {
		return nil, aerr
	}
	if nonIdempotent[action] && res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusServiceUnavailable {
		return nil, fmt.Errorf("%w: %w", aerr, ErrOutcomeUnknown)
	}
	return nil, hub.Retryable(aerr, hub.ParseRetryAfter(res.Header.Get("Retry-After"), time.Now()))
}

// DecodeError turns a non-2xx response body into an error: an *hub.ActionError with Action and
// Status set when the body is one, otherwise an error quoting the status and the first bytes.
func DecodeError(action string, status int, body []byte) error {
	var ae hub.ActionError
	if err := json.Unmarshal(body, &ae); err == nil && ae.Kind != "" {
		ae.Action, ae.Status = action, status
		return &ae
	}
	return fmt.Errorf("%s: HTTP %d %s: body is not an action error: %q", action, status, http.StatusText(status), prefix(body))
}

// redact replaces the token in an untrusted body, before any of it is quoted in an error.
func (c *Client) redact(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte(c.token), []byte("[REDACTED]"))
}

// prefix returns the first bytes of an untrusted body for an error message.
func prefix(b []byte) []byte {
	const n = 256
	if len(b) > n {
		return b[:n]
	}
	return b
}

// scrub rebuilds net/http errors so that they name the action and the Hub URL without any
// user info, and makes sure the token cannot leak through an error string.
func (c *Client) scrub(action string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = &url.Error{Op: ue.Op, URL: c.display + "/api/v1/actions/invoke/" + action, Err: ue.Err}
	}
	if strings.Contains(err.Error(), c.token) {
		return fmt.Errorf("%s: %s", action, strings.ReplaceAll(err.Error(), c.token, "[REDACTED]"))
	}
	return fmt.Errorf("%s: %w", action, err)
}
