package jobspec

import (
	"github.com/omegacell/omegacell/proto/limits"

	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// Quantities are parsed exactly (math/big), never through float64, so
// "0.1" CPU is 100 millicores and "1.5Gi" is 1610612736 bytes, and a value
// that does not come out as a whole number of the base unit is an error
// rather than silently rounded.

// decimalRE is a non-negative decimal with an optional exponent and a unit
// suffix of letters: "500m", "1.5Gi", "2", "1e3".
var decimalRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]{1,3}))?([A-Za-z]*)$`)

// splitQuantity splits s into its exact number and its unit suffix.
func splitQuantity(s string) (*big.Rat, string, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return nil, "", errors.New("must not be negative")
	}
	t = strings.TrimPrefix(t, "+")
	m := decimalRE.FindStringSubmatch(t)
	if m == nil {
		return nil, "", errors.New("not a number with an optional unit")
	}
	num := m[1]
	if m[2] != "" {
		num += "e" + m[2]
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return nil, "", errors.New("not a number with an optional unit")
	}
	return r, m[3], nil
}

var (
	errFractional = errors.New("fractional")
	errTooLarge   = errors.New("too large")
)

// wholeInt64 returns r as an int64 when it is a whole number in range.
func wholeInt64(r *big.Rat) (int64, error) {
	if !r.IsInt() {
		return 0, errFractional
	}
	if !r.Num().IsInt64() {
		return 0, errTooLarge
	}
	return r.Num().Int64(), nil
}

// ParseCPU parses a CPU amount into millicores: "500m", "2", "0.5", "1.5".
// A bare number counts cores.
func ParseCPU(s string) (int64, error) {
	r, unit, err := splitQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %v (want cores such as 2 or 0.5, or millicores such as 500m)", limits.Quote(s), err)
	}
	switch unit {
	case "":
		r.Mul(r, big.NewRat(1000, 1))
	case "m":
	default:
		return 0, fmt.Errorf("%s: unknown unit %q (want cores such as 2 or 0.5, or millicores such as 500m)", limits.Quote(s), unit)
	}
	milli, err := wholeInt64(r)
	if err != nil {
		if err == errFractional {
			return 0, fmt.Errorf("%s: finer than one millicore (1m = 0.001)", limits.Quote(s))
		}
		return 0, fmt.Errorf("%s: too large", limits.Quote(s))
	}
	return milli, nil
}

// byteUnit is a suffix of memory and disk amounts, as in Kubernetes:
// decimal (k = 1000) and binary (Ki = 1024).
type byteUnit struct {
	suffix string
	mult   int64
}

// byteUnits lists binary units before decimal ones, each from large to
// small; FormatBytes relies on this order.
var byteUnits = []byteUnit{
	{"Ei", 1 << 60}, {"Pi", 1 << 50}, {"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10},
	{"E", 1e18}, {"P", 1e15}, {"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"k", 1e3},
}

func byteMultiplier(suffix string) (int64, bool) {
	if suffix == "" {
		return 1, true
	}
	for _, u := range byteUnits {
		if u.suffix == suffix {
			return u.mult, true
		}
	}
	return 0, false
}

const byteUnitList = "k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei"

// ParseBytes parses a memory or disk amount into bytes: "512Mi", "2Gi",
// "1G", "1.5Gi", or a plain number of bytes.
func ParseBytes(s string) (int64, error) {
	r, unit, err := splitQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %v (want bytes such as 512Mi, 2Gi or 1G)", limits.Quote(s), err)
	}
	mult, ok := byteMultiplier(unit)
	if !ok {
		return 0, fmt.Errorf("%s: unknown unit %q%s (want one of %s)", limits.Quote(s), unit, unitHint(unit), byteUnitList)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	b, err := wholeInt64(r)
	if err != nil {
		if err == errFractional {
			return 0, fmt.Errorf("%s: not a whole number of bytes", limits.Quote(s))
		}
		return 0, fmt.Errorf("%s: too large", limits.Quote(s))
	}
	return b, nil
}

// unitHint suggests the intended unit for common misspellings such as
// "MB", "mb", "gi" or "K".
func unitHint(unit string) string {
	base := strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "b")
	var decimal, binary string
	for _, u := range byteUnits {
		switch {
		case len(u.suffix) == 1 && strings.EqualFold(u.suffix, base):
			decimal = u.suffix
		case len(u.suffix) == 2 && (strings.EqualFold(u.suffix, base) || strings.EqualFold(u.suffix, base+"i")):
			binary = u.suffix
		}
	}
	switch {
	case decimal != "" && binary != "":
		return fmt.Sprintf("; did you mean %q or %q?", decimal, binary)
	case decimal != "":
		return fmt.Sprintf("; did you mean %q?", decimal)
	case binary != "":
		return fmt.Sprintf("; did you mean %q?", binary)
	}
	return ""
}

// ParseGPU parses a GPU amount into milli-GPU: "0.5" is half a device,
// "2" two whole devices.
func ParseGPU(s string) (int64, error) {
	r, unit, err := splitQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %v (want GPUs such as 0.5 or 2)", limits.Quote(s), err)
	}
	if unit != "" {
		return 0, fmt.Errorf("%s: GPUs take no unit (want GPUs such as 0.5 or 2)", limits.Quote(s))
	}
	r.Mul(r, big.NewRat(1000, 1))
	milli, err := wholeInt64(r)
	if err != nil {
		if err == errFractional {
			return 0, fmt.Errorf("%s: finer than a thousandth of a GPU", limits.Quote(s))
		}
		return 0, fmt.Errorf("%s: too large", limits.Quote(s))
	}
	return milli, nil
}

// FormatCPU renders millicores the way a spec writes them: whole cores as
// "2", less than a core as "500m", more as decimal cores "2.5".
// ParseCPU(FormatCPU(m)) == m.
func FormatCPU(milli int64) string {
	if milli%1000 != 0 && milli > -1000 && milli < 1000 {
		return strconv.FormatInt(milli, 10) + "m"
	}
	return formatThousandths(milli)
}

// FormatBytes renders bytes exactly, with the unit that gives the smallest
// whole number: 536870912 → "512Mi", 1000000000 → "1G", 1000 → "1k",
// 1023 → "1023". ParseBytes(FormatBytes(b)) == b.
func FormatBytes(b int64) string {
	if b == 0 {
		return "0"
	}
	best, bestUnit := b, ""
	for _, u := range byteUnits {
		if b%u.mult == 0 && abs(b/u.mult) < abs(best) {
			best, bestUnit = b/u.mult, u.suffix
		}
	}
	return strconv.FormatInt(best, 10) + bestUnit
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// HumanBytes renders bytes for reading, in binary units with at most one
// decimal: 123456789 → "117.7Mi". Unlike FormatBytes it rounds.
func HumanBytes(b int64) string {
	if b < 1024 && b > -1024 {
		return strconv.FormatInt(b, 10)
	}
	units := []string{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
	v := float64(b)
	unit := ""
	for _, u := range units {
		if math.Abs(v) < 1024 {
			break
		}
		v /= 1024
		unit = u
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + unit
}

// FormatGPU renders milli-GPU as GPUs: 500 → "0.5", 2000 → "2", 125 →
// "0.125". ParseGPU(FormatGPU(m)) == m.
func FormatGPU(milli int64) string { return formatThousandths(milli) }

// formatThousandths renders an integer count of thousandths as an exact
// decimal without trailing zeros: 2500 → "2.5", 125 → "0.125".
func formatThousandths(milli int64) string {
	sign := ""
	if milli < 0 {
		sign, milli = "-", -milli
	}
	whole, frac := milli/1000, milli%1000
	if frac == 0 {
		return sign + strconv.FormatInt(whole, 10)
	}
	return sign + strconv.FormatInt(whole, 10) + "." + strings.TrimRight(fmt.Sprintf("%03d", frac), "0")
}
