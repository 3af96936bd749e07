package hub

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"99999999999", 24 * time.Hour},
		{"Sun, 22 Nov 2026 12:00:30 GMT", 30 * time.Second},
		{"Sun, 22 Nov 2026 11:00:00 GMT", 0},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDelay(t *testing.T) {
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, MaxRetryAfter: 5 * time.Second}
	for attempt := 1; attempt <= 40; attempt++ {
		ceil := min(time.Second, 100*time.Millisecond<<min(attempt-1, 20))
		for range 50 {
			if d := p.Delay(attempt, 0); d < 0 || d > ceil {
				t.Fatalf("Delay(%d) = %v, want within [0, %v]", attempt, d, ceil)
			}
		}
	}
	if d := p.Delay(1, 2*time.Second); d != 2*time.Second {
		t.Errorf("Retry-After 2s gave %v", d)
	}
	if d := p.Delay(1, time.Hour); d != 5*time.Second {
		t.Errorf("Retry-After 1h gave %v, want the 5s cap", d)
	}
}

func TestDo(t *testing.T) {
	transient := errors.New("transient")
	permanent := errors.New("permanent")
	tests := []struct {
		name      string
		fails     []error // errors returned by successive attempts; nil after the list
		max       int
		wantCalls int
		wantErr   error
	}{
		{"first try", nil, 3, 1, nil},
		{"two transient then ok", []error{Retryable(transient, 0), Retryable(transient, 0)}, 3, 3, nil},
		{"permanent at once", []error{permanent}, 3, 1, permanent},
		{"exhausted", []error{Retryable(transient, 0), Retryable(transient, 0), Retryable(transient, 0)}, 3, 3, transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var slept []time.Duration
			p := RetryPolicy{MaxAttempts: tt.max, Sleep: func(_ context.Context, d time.Duration) error {
				slept = append(slept, d)
				return nil
			}}
			calls := 0
			err := p.Do(context.Background(), func(attempt int) error {
				calls++
				if attempt != calls {
					t.Fatalf("attempt %d on call %d", attempt, calls)
				}
				if calls <= len(tt.fails) {
					return tt.fails[calls-1]
				}
				return nil
			})
			if calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			var re *RetryableError
			if errors.As(err, &re) {
				t.Errorf("returned error still marked retryable: %v", err)
			}
			if len(slept) != calls-1 && tt.wantErr != permanent {
				t.Errorf("slept %d times for %d calls", len(slept), calls)
			}
		})
	}
}

func TestDoHonoursRetryAfterAndContext(t *testing.T) {
	var slept []time.Duration
	p := RetryPolicy{Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }}
	n := 0
	err := p.Do(context.Background(), func(int) error {
		n++
		if n == 1 {
			return Retryable(errors.New("429"), time.Second)
		}
		return nil
	})
	if err != nil || len(slept) != 1 || slept[0] != time.Second {
		t.Fatalf("err=%v slept=%v, want one 1s sleep", err, slept)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = RetryPolicy{}.Do(ctx, func(int) error { return Retryable(errors.New("503"), time.Minute) })
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("cancelled ctx: err = %v", err)
	}
	start := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := SleepContext(ctx, time.Minute); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("SleepContext = %v after %v", err, time.Since(start))
	}
}
