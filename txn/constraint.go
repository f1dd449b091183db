package txn

import (
	"fmt"
	"strings"
)

// Op is a label-selector operator.
type Op uint8

const (
	OpIn           Op = 1 // label value is one of Values ("=" is In with one value)
	OpNotIn        Op = 2 // label absent or not one of Values ("!=")
	OpExists       Op = 3
	OpDoesNotExist Op = 4
)

// Constraint is one label-selector term.
type Constraint struct {
	Key    string
	Op     Op
	Values []string
}

// Matches reports whether labels satisfy the term.
func (c Constraint) Matches(labels map[string]string) bool {
	v, ok := labels[c.Key]
	switch c.Op {
	case OpIn:
		return ok && contains(c.Values, v)
	case OpNotIn:
		return !ok || !contains(c.Values, v)
	case OpExists:
		return ok
	case OpDoesNotExist:
		return !ok
	}
	return false
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

func (c Constraint) String() string {
	switch c.Op {
	case OpIn:
		if len(c.Values) == 1 {
			return c.Key + " = " + c.Values[0]
		}
		return c.Key + " in (" + strings.Join(c.Values, ",") + ")"
	case OpNotIn:
		if len(c.Values) == 1 {
			return c.Key + " != " + c.Values[0]
		}
		return c.Key + " notin (" + strings.Join(c.Values, ",") + ")"
	case OpExists:
		return c.Key
	case OpDoesNotExist:
		return "!" + c.Key
	}
	return fmt.Sprintf("%s ?op%d", c.Key, c.Op)
}

// Validate checks the term's shape; the error names the problem.
func (c Constraint) Validate() error {
	if c.Key == "" {
		return fmt.Errorf("key is empty")
	}
	switch c.Op {
	case OpIn, OpNotIn:
		if len(c.Values) == 0 {
			return fmt.Errorf("%q: operator needs at least one value", c.Key)
		}
	case OpExists, OpDoesNotExist:
		if len(c.Values) != 0 {
			return fmt.Errorf("%q: exists/does-not-exist take no values", c.Key)
		}
	default:
		return fmt.Errorf("%q: unknown operator %d", c.Key, c.Op)
	}
	return nil
}

// FirstUnmet returns the first term that labels do not satisfy.
func FirstUnmet(cs []Constraint, labels map[string]string) (Constraint, bool) {
	for _, c := range cs {
		if !c.Matches(labels) {
			return c, true
		}
	}
	return Constraint{}, false
}
