package hub

// OrDefault returns v, or def when v is zero or negative. It is the rule of every option
// struct of hub and its sub-packages (RetryPolicy, the server's Limits, the local store's
// Options): a zero field means the default.
func OrDefault[T ~int | ~int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
