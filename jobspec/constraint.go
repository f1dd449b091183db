package jobspec

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// Label keys look like Kubernetes label keys ("rack", "gpu.model",
// "example.com/team"); values are short words ("r1", "H100", "A100-80GB").
var (
	labelValueRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
)

// Keys are the API's (limits.LabelKey). Values are tighter than the API's
// (limits.MaxLabelValueLen): a selector names words, not free text.
const (
	maxLabelKeyLen   = limits.MaxLabelKeyLen
	maxLabelValueLen = 63
)

func validLabelKey(k string) error {
	if len(k) > maxLabelKeyLen {
		return fmt.Errorf("label key %s is longer than %d characters", limits.Quote(k), maxLabelKeyLen)
	}
	if !limits.LabelKey.MatchString(k) {
		return fmt.Errorf("label key %s: want letters, digits and . _ / - (starting and ending with a letter or digit)", limits.Quote(k))
	}
	return nil
}

func validLabelValue(v string) error {
	if len(v) > maxLabelValueLen {
		return fmt.Errorf("label value %s is longer than %d characters", limits.Quote(v), maxLabelValueLen)
	}
	if !labelValueRE.MatchString(v) {
		return fmt.Errorf("label value %s: want letters, digits and . _ - (starting and ending with a letter or digit)", limits.Quote(v))
	}
	return nil
}

// ParseConstraint parses one label-selector term:
//
//	rack in (r1, r2)     label is one of the values
//	rack notin (r3)      label is absent or none of the values
//	gpu.model = H100     label equals the value (also ==)
//	zone != b            label is absent or differs from the value
//	ssd                  label exists
//	!ssd                 label does not exist
//
// The result has passed txn.Constraint.Validate.
func ParseConstraint(s string) (txn.Constraint, error) {
	c, err := parseConstraint(strings.TrimSpace(s))
	if err != nil {
		return txn.Constraint{}, fmt.Errorf("%s: %v", limits.Quote(s), err)
	}
	if err := c.Validate(); err != nil {
		return txn.Constraint{}, fmt.Errorf("%s: %v", limits.Quote(s), err)
	}
	if len(c.Values) > limits.MaxConstraintValues {
		return txn.Constraint{}, fmt.Errorf("%s: %d values; at most %d are allowed", limits.Quote(s), len(c.Values), limits.MaxConstraintValues)
	}
	return c, nil
}

func parseConstraint(s string) (txn.Constraint, error) {
	if s == "" {
		return txn.Constraint{}, fmt.Errorf("empty selector (want e.g. \"rack in (r1,r2)\", \"zone != b\" or \"ssd\")")
	}
	if rest, ok := strings.CutPrefix(s, "!"); ok && !strings.HasPrefix(rest, "=") {
		key := strings.TrimSpace(rest)
		if err := validLabelKey(key); err != nil {
			return txn.Constraint{}, err
		}
		return txn.Constraint{Key: key, Op: txn.OpDoesNotExist}, nil
	}
	end := strings.IndexFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '=' || r == '!' || r == '(' })
	if end < 0 {
		end = len(s)
	}
	key, rest := s[:end], strings.TrimSpace(s[end:])
	if key == "" {
		return txn.Constraint{}, fmt.Errorf("missing label key before %s", limits.Quote(rest))
	}
	if err := validLabelKey(key); err != nil {
		return txn.Constraint{}, err
	}
	switch {
	case rest == "":
		return txn.Constraint{Key: key, Op: txn.OpExists}, nil
	case strings.HasPrefix(rest, "!="):
		v, err := singleValue(rest[2:], "!=")
		return txn.Constraint{Key: key, Op: txn.OpNotIn, Values: []string{v}}, err
	case strings.HasPrefix(rest, "=="):
		v, err := singleValue(rest[2:], "==")
		return txn.Constraint{Key: key, Op: txn.OpIn, Values: []string{v}}, err
	case strings.HasPrefix(rest, "="):
		v, err := singleValue(rest[1:], "=")
		return txn.Constraint{Key: key, Op: txn.OpIn, Values: []string{v}}, err
	}
	word, list := rest, ""
	if i := strings.IndexAny(rest, " \t("); i >= 0 {
		word, list = rest[:i], strings.TrimSpace(rest[i:])
	}
	var op txn.Op
	switch word {
	case "in":
		op = txn.OpIn
	case "notin":
		op = txn.OpNotIn
	default:
		return txn.Constraint{}, fmt.Errorf("unknown operator %s (want in, notin, =, ==, !=, a bare key or !key)", limits.Quote(word))
	}
	values, err := valueList(list, word)
	return txn.Constraint{Key: key, Op: op, Values: values}, err
}

func singleValue(s, op string) (string, error) {
	v := strings.TrimSpace(s)
	if v == "" {
		return "", fmt.Errorf("missing value after %q", op)
	}
	return v, validLabelValue(v)
}

// valueList parses "(v1, v2, ...)" after in/notin.
func valueList(s, op string) ([]string, error) {
	if !strings.HasPrefix(s, "(") {
		return nil, fmt.Errorf("want \"(\" after %q, as in \"rack %s (r1,r2)\"", op, op)
	}
	closing := strings.Index(s, ")")
	if closing < 0 {
		return nil, fmt.Errorf("missing closing \")\"")
	}
	if extra := strings.TrimSpace(s[closing+1:]); extra != "" {
		return nil, fmt.Errorf("unexpected %s after \")\"", limits.Quote(extra))
	}
	inner := s[1:closing]
	if strings.ContainsAny(inner, "()") {
		return nil, fmt.Errorf("unexpected parenthesis inside the value list")
	}
	if strings.TrimSpace(inner) == "" {
		return nil, fmt.Errorf("%q needs at least one value", op)
	}
	var values []string
	seen := map[string]bool{}
	for _, part := range strings.Split(inner, ",") {
		v := strings.TrimSpace(part)
		if v == "" {
			return nil, fmt.Errorf("empty value in the list")
		}
		if err := validLabelValue(v); err != nil {
			return nil, err
		}
		if seen[v] {
			return nil, fmt.Errorf("value %s listed twice", limits.Quote(v))
		}
		seen[v] = true
		values = append(values, v)
	}
	return values, nil
}
