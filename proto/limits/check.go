package limits

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Quote renders a value for an error message: Go-quoted, at most
// MaxQuoted bytes of it, cut on a character boundary, with the full length
// said when it was cut. Every error that echoes a client's value uses it,
// so no answer grows with what was sent.
func Quote(s string) string {
	if len(s) <= MaxQuoted {
		return strconv.Quote(s)
	}
	cut := MaxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// CheckText checks a free-text value: at most max bytes and no NUL byte
// (NUL cannot pass through exec's argv or environment, and it truncates C
// strings on the way).
func CheckText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%d bytes, at most %d are allowed", len(s), max)
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return fmt.Errorf("%s has a NUL byte at offset %d", Quote(s), i)
	}
	return nil
}

// CheckHTTPURL checks a health-check URL: at most MaxURLLen bytes, an
// absolute http or https URL with a host, nothing else (no file://).
func CheckHTTPURL(s string) error {
	if len(s) > MaxURLLen {
		return fmt.Errorf("%d bytes, at most %d are allowed", len(s), MaxURLLen)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%s is not a URL", Quote(s))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s: want an http:// or https:// URL with a host", Quote(s))
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%s: want an http:// or https:// URL with a host", Quote(s))
	case u.User != nil:
		return fmt.Errorf("%s carries credentials; health checks take none", Quote(s))
	}
	return nil
}

// CheckRatio checks a figure that must be a finite number in 0..MaxRatio
// (conflicted claims per accepted claim can exceed 1).
func CheckRatio(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > MaxRatio {
		return fmt.Errorf("%g is not a number in 0..%g", f, float64(MaxRatio))
	}
	return nil
}

// CheckFraction checks a figure that must be a finite number in 0..1.
func CheckFraction(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1 {
		return fmt.Errorf("%g is not a number in 0..1", f)
	}
	return nil
}
