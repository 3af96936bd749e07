// Package logging holds what otabake and otabake-agent share about structured logs.
package logging

import (
	"io"
	"log/slog"
	"math"
)

// Discard returns a logger that drops every record before formatting it, for callers that
// passed no logger. It stands in for slog.DiscardHandler, which needs Go 1.24: the device
// agent also builds with the Go of Yocto scarthgap (1.22, see go.agent.mod).
func Discard() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.Level(math.MaxInt)}))
}
