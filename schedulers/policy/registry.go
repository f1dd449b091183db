package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Registry finds policies by name. It is a value, not a global: the
// built-in set is schedulers/policy/builtin.Registry, and a team's own
// scheduler builds its own.
type Registry struct {
	byName map[string]Policy
}

// NewRegistry returns a registry of ps; names must be distinct and
// non-empty.
func NewRegistry(ps ...Policy) (*Registry, error) {
	r := &Registry{byName: make(map[string]Policy, len(ps))}
	for i, p := range ps {
		name := p.Name()
		switch _, dup := r.byName[name]; {
		case name == "":
			return nil, fmt.Errorf("policies[%d]: name is empty", i)
		case dup:
			return nil, fmt.Errorf("policies[%d]: name %q is registered twice", i, name)
		}
		r.byName[name] = p
	}
	return r, nil
}

// Lookup returns the policy registered under name.
func (r *Registry) Lookup(name string) (Policy, error) {
	if p, ok := r.byName[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("policy %q: unknown (known: %s)", name, strings.Join(r.Names(), ", "))
}

// Names lists the registered names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
