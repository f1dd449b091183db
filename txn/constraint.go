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
	// set holds Values when there are more than setFrom of them (see
	// [Compile]), so a match costs one lookup however long the list.
	set map[string]struct{}
}

// setFrom is the number of values above which a term is matched through a
// set: below it a scan of a few strings is cheaper than hashing.
const setFrom = 8

// Compile returns the terms ready for repeated matching: each term with
// more than a few values gets a set of them, built once. The store and
// the schedulers compile a job's constraints once, when it arrives, and
// every claim of the job shares the result, so [Matches] costs O(1) per
// term whatever the number of values. Uncompiled terms still match
// correctly, by a scan.
func Compile(cs []Constraint) []Constraint {
	if len(cs) == 0 {
		return cs
	}
	out := make([]Constraint, len(cs))
	for i, c := range cs {
		c.set = nil
		if len(c.Values) > setFrom && (c.Op == OpIn || c.Op == OpNotIn) {
			c.set = make(map[string]struct{}, len(c.Values))
			for _, v := range c.Values {
				c.set[v] = struct{}{}
			}
		}
		out[i] = c
	}
	return out
}

// Matches reports whether labels satisfy the term.
func (c Constraint) Matches(labels map[string]string) bool {
	v, ok := labels[c.Key]
	switch c.Op {
	case OpIn:
		return ok && c.has(v)
	case OpNotIn:
		return !ok || !c.has(v)
	case OpExists:
		return ok
	case OpDoesNotExist:
		return !ok
	}
	return false
}

func (c *Constraint) has(v string) bool {
	if c.set != nil {
		_, ok := c.set[v]
		return ok
	}
	for _, x := range c.Values {
		if x == v {
			return true
		}
	}
	return false
}

// String renders the term as a selector. Long lists are cut after
// shownValues values (the count is said), so a claim's conflict detail
// stays short however many values the term has.
func (c Constraint) String() string {
	switch c.Op {
	case OpIn:
		if len(c.Values) == 1 {
			return c.Key + " = " + c.Values[0]
		}
		return c.Key + " in (" + joinValues(c.Values) + ")"
	case OpNotIn:
		if len(c.Values) == 1 {
			return c.Key + " != " + c.Values[0]
		}
		return c.Key + " notin (" + joinValues(c.Values) + ")"
	case OpExists:
		return c.Key
	case OpDoesNotExist:
		return "!" + c.Key
	}
	return fmt.Sprintf("%s ?op%d", c.Key, c.Op)
}

const shownValues = 4

func joinValues(vs []string) string {
	if len(vs) <= shownValues {
		return strings.Join(vs, ",")
	}
	return fmt.Sprintf("%s,... %d values", strings.Join(vs[:shownValues], ","), len(vs))
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
