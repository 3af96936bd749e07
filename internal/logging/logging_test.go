package logging

import (
	"context"
	"log/slog"
	"testing"
)

func TestDiscardIsDisabled(t *testing.T) {
	log := Discard()
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.Level(1 << 20)} {
		if log.Enabled(context.Background(), level) {
			t.Errorf("Discard().Enabled(%v) = true", level)
		}
	}
}
