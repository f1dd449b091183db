package txn_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

func TestConstraint(t *testing.T) {
	labels := map[string]string{"zone": "a", "gpu.model": "h100", "empty": ""}
	tests := []struct {
		c         txn.Constraint
		matches   bool
		str       string
		wantError string // "" means valid
	}{
		{txn.Constraint{Key: "zone", Op: txn.OpIn, Values: []string{"a"}}, true, "zone = a", ""},
		{txn.Constraint{Key: "zone", Op: txn.OpIn, Values: []string{"b"}}, false, "zone = b", ""},
		{txn.Constraint{Key: "zone", Op: txn.OpIn, Values: []string{"b", "a"}}, true, "zone in (b,a)", ""},
		{txn.Constraint{Key: "rack", Op: txn.OpIn, Values: []string{"r1"}}, false, "rack = r1", ""},
		{txn.Constraint{Key: "empty", Op: txn.OpIn, Values: []string{""}}, true, "empty = ", ""},
		{txn.Constraint{Key: "zone", Op: txn.OpNotIn, Values: []string{"a"}}, false, "zone != a", ""},
		{txn.Constraint{Key: "zone", Op: txn.OpNotIn, Values: []string{"b", "c"}}, true, "zone notin (b,c)", ""},
		{txn.Constraint{Key: "rack", Op: txn.OpNotIn, Values: []string{"r1"}}, true, "rack != r1", ""},
		{txn.Constraint{Key: "gpu.model", Op: txn.OpExists}, true, "gpu.model", ""},
		{txn.Constraint{Key: "empty", Op: txn.OpExists}, true, "empty", ""},
		{txn.Constraint{Key: "rack", Op: txn.OpExists}, false, "rack", ""},
		{txn.Constraint{Key: "rack", Op: txn.OpDoesNotExist}, true, "!rack", ""},
		{txn.Constraint{Key: "zone", Op: txn.OpDoesNotExist}, false, "!zone", ""},
		{txn.Constraint{Key: "", Op: txn.OpExists}, false, "", "key is empty"},
		{txn.Constraint{Key: "zone", Op: txn.OpIn}, false, "zone in ()", "needs at least one value"},
		{txn.Constraint{Key: "zone", Op: txn.OpNotIn}, true, "zone notin ()", "needs at least one value"},
		{txn.Constraint{Key: "zone", Op: txn.OpExists, Values: []string{"a"}}, true, "zone", "take no values"},
		{txn.Constraint{Key: "zone", Op: txn.OpDoesNotExist, Values: []string{"a"}}, false, "!zone", "take no values"},
		{txn.Constraint{Key: "zone", Op: 0}, false, "zone ?op0", "unknown operator 0"},
		{txn.Constraint{Key: "zone", Op: 9, Values: []string{"a"}}, false, "zone ?op9", "unknown operator 9"},
	}
	for _, tt := range tests {
		t.Run(tt.str, func(t *testing.T) {
			if got := tt.c.Matches(labels); got != tt.matches {
				t.Errorf("Matches = %v, want %v", got, tt.matches)
			}
			if got := tt.c.Matches(nil); got != (tt.c.Op == txn.OpNotIn || tt.c.Op == txn.OpDoesNotExist) {
				t.Errorf("Matches(no labels) = %v", got)
			}
			if got := tt.c.String(); got != tt.str {
				t.Errorf("String = %q, want %q", got, tt.str)
			}
			err := tt.c.Validate()
			switch {
			case tt.wantError == "" && err != nil:
				t.Errorf("Validate: unexpected %v", err)
			case tt.wantError != "" && (err == nil || !strings.Contains(err.Error(), tt.wantError)):
				t.Errorf("Validate = %v, want an error containing %q", err, tt.wantError)
			case tt.wantError != "" && tt.c.Key != "" && !strings.Contains(err.Error(), `"`+tt.c.Key+`"`):
				t.Errorf("Validate = %v does not name the key %q", err, tt.c.Key)
			}
		})
	}
}

func TestFirstUnmet(t *testing.T) {
	zoneA := txn.Constraint{Key: "zone", Op: txn.OpIn, Values: []string{"a"}}
	noGPU := txn.Constraint{Key: "gpu.model", Op: txn.OpDoesNotExist}
	rack := txn.Constraint{Key: "rack", Op: txn.OpExists}
	tests := []struct {
		name   string
		cs     []txn.Constraint
		labels map[string]string
		want   txn.Constraint
		unmet  bool
	}{
		{"no constraints", nil, nil, txn.Constraint{}, false},
		{"all met", []txn.Constraint{zoneA, noGPU}, map[string]string{"zone": "a"}, txn.Constraint{}, false},
		{"second unmet", []txn.Constraint{zoneA, noGPU}, map[string]string{"zone": "a", "gpu.model": "h100"}, noGPU, true},
		{"first of two unmet is reported", []txn.Constraint{rack, zoneA}, map[string]string{"zone": "b"}, rack, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, unmet := txn.FirstUnmet(tt.cs, tt.labels)
			if unmet != tt.unmet || got.String() != tt.want.String() {
				t.Errorf("FirstUnmet = %v, %v; want %v, %v", got, unmet, tt.want, tt.unmet)
			}
		})
	}
}

// TestConstraintCompile: a compiled term matches exactly as the plain one
// (through its set when it has many values), and its rendering stays short
// however many values it has.
func TestConstraintCompile(t *testing.T) {
	many := make([]string, 1000)
	for i := range many {
		many[i] = fmt.Sprintf("v%04d", i)
	}
	terms := []txn.Constraint{
		{Key: "zone", Op: txn.OpIn, Values: many},
		{Key: "zone", Op: txn.OpNotIn, Values: many},
		{Key: "zone", Op: txn.OpIn, Values: many[:3]},
		{Key: "zone", Op: txn.OpExists},
		{Key: "zone", Op: txn.OpDoesNotExist},
	}
	compiled := txn.Compile(terms)
	for _, labels := range []map[string]string{nil, {"zone": "v0000"}, {"zone": "v0999"}, {"zone": "v0500"}, {"zone": "w"}, {"rack": "v0001"}} {
		for i := range terms {
			if got, want := compiled[i].Matches(labels), terms[i].Matches(labels); got != want {
				t.Errorf("%s on %v: compiled %v, plain %v", terms[i], labels, got, want)
			}
		}
	}
	if s := terms[0].String(); len(s) > 80 || !strings.Contains(s, "1000 values") {
		t.Errorf("String() of 1000 values = %q (%d bytes), want a short form naming the count", s, len(s))
	}
	if txn.Compile(nil) != nil {
		t.Error("Compile(nil) != nil")
	}
}
