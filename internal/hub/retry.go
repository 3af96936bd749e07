package hub

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy bounds how often and how long a Hub call or an upload is retried. Transient
// failures (network errors, 429, 5xx) are common on the way to a cloud Hub and its object
// store, so every HTTP call goes through one policy; the zero value means the defaults.
type RetryPolicy struct {
	// MaxAttempts is the total number of tries, including the first (default 6).
	MaxAttempts int
	// BaseDelay is the backoff ceiling of the first retry; it doubles per retry (default 500 ms).
	BaseDelay time.Duration
	// MaxDelay caps the backoff ceiling (default 30 s).
	MaxDelay time.Duration
	// MaxRetryAfter caps a server's Retry-After, so a hostile or confused server cannot park
	// a CI job for hours (default 60 s).
	MaxRetryAfter time.Duration
	// Sleep waits for d or until ctx ends; nil means a timer. Tests replace it to record
	// delays without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRetry, if set, is told about every failed attempt that will be retried.
	OnRetry func(attempt int, delay time.Duration, err error)
}

// Default retry parameters.
const (
	DefaultMaxAttempts   = 6
	DefaultBaseDelay     = 500 * time.Millisecond
	DefaultMaxDelay      = 30 * time.Second
	DefaultMaxRetryAfter = 60 * time.Second
)

func (p RetryPolicy) withDefaults() RetryPolicy {
	p.MaxAttempts = OrDefault(p.MaxAttempts, DefaultMaxAttempts)
	p.BaseDelay = OrDefault(p.BaseDelay, DefaultBaseDelay)
	p.MaxDelay = OrDefault(p.MaxDelay, DefaultMaxDelay)
	p.MaxRetryAfter = OrDefault(p.MaxRetryAfter, DefaultMaxRetryAfter)
	if p.Sleep == nil {
		p.Sleep = SleepContext
	}
	return p
}

// RetryableError marks an error as transient. RetryAfter, when positive, is the server's
// requested delay and replaces the computed backoff (capped by MaxRetryAfter).
type RetryableError struct {
	Err        error
	RetryAfter time.Duration
}

// Error returns the wrapped error's message.
func (e *RetryableError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error, so errors.Is and errors.As see through the marker.
func (e *RetryableError) Unwrap() error { return e.Err }

// Retryable wraps err so that RetryPolicy.Do tries again.
func Retryable(err error, retryAfter time.Duration) error {
	return &RetryableError{Err: err, RetryAfter: retryAfter}
}

// Do calls op until it returns nil or a non-retryable error, the attempts are used up, or ctx
// ends. op gets the 1-based attempt number. The returned error is op's last error with the
// RetryableError marker removed, annotated with the number of attempts when there was more
// than one.
func (p RetryPolicy) Do(ctx context.Context, op func(attempt int) error) error {
	p = p.withDefaults()
	for attempt := 1; ; attempt++ {
		err := op(attempt)
		if err == nil {
			return nil
		}
		var re *RetryableError
		if !errors.As(err, &re) {
			return err
		}
		if attempt >= p.MaxAttempts {
			return fmt.Errorf("giving up after %d attempts: %w", attempt, re.Err)
		}
		if ctx.Err() != nil {
			return re.Err
		}
		d := p.Delay(attempt, re.RetryAfter)
		if p.OnRetry != nil {
			p.OnRetry(attempt, d, re.Err)
		}
		if serr := p.Sleep(ctx, d); serr != nil {
			return fmt.Errorf("%w (while waiting to retry after: %v)", serr, re.Err)
		}
	}
}

// Delay returns how long to wait after the failed attempt (1-based): the server's
// retryAfter if positive (capped by MaxRetryAfter), otherwise capped exponential backoff with
// full jitter, a uniform random duration in [0, min(MaxDelay, BaseDelay·2^(attempt-1))].
// Full jitter spreads out the retries of many CI jobs hitting the same Hub.
func (p RetryPolicy) Delay(attempt int, retryAfter time.Duration) time.Duration {
	p = p.withDefaults()
	if retryAfter > 0 {
		return min(retryAfter, p.MaxRetryAfter)
	}
	ceil := p.MaxDelay
	if shift := attempt - 1; shift < 30 {
		if d := p.BaseDelay << shift; d > 0 && d < ceil {
			ceil = d
		}
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// RetryableStatus reports whether an HTTP status is worth retrying: 429 and every 5xx.
func RetryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500 && status <= 599
}

// ParseRetryAfter reads a Retry-After header value, either delay-seconds or an HTTP date
// (relative to now). It returns 0 when the header is absent or malformed, and never a
// negative duration.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// SleepContext waits for d or until ctx ends, whichever is first, and returns ctx's error in
// the latter case.
func SleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
