package project

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a byte count written as in rugix-bakery.toml: a number with an optional fraction and
// "_" separators, then a case-insensitive unit. K…E and KiB…EiB are binary, kB…EB decimal,
// B or no unit is bytes. A TOML integer is a byte count. So "256M" is 256 MiB but "256MB" is
// 256×10⁶ bytes, exactly as Rugix Bakery reads it.
type Size int64

// UnmarshalText parses a size string for the TOML decoder.
func (s *Size) UnmarshalText(b []byte) error {
	n, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "pib": 1 << 50, "eib": 1 << 60,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15, "eb": 1e18,
}

// ParseSize parses a size string such as "256M", "1GiB", "1.5 G", "100_000" or "4096".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.' || t[i] == '_') {
		i++
	}
	num := strings.ReplaceAll(t[:i], "_", "")
	unit := strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("invalid size %q: want a number and an optional unit (B, K/KiB…E/EiB binary, kB…EB decimal), e.g. \"256M\" or \"1GiB\"", s)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseUint(num, 10, 63)
		if err == nil && (mult == 1 || n <= uint64(math.MaxInt64/int64(mult))) {
			return int64(n) * int64(mult), nil
		}
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: bad number %q", s, num)
	}
	v := math.Floor(f * mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return int64(v), nil
}
