package jobspec

import (
	"reflect"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

func TestParseConstraint(t *testing.T) {
	good := []struct {
		in   string
		want txn.Constraint
	}{
		{"rack in (r1,r2)", txn.Constraint{Key: "rack", Op: txn.OpIn, Values: []string{"r1", "r2"}}},
		{"rack in ( r1 , r2 )", txn.Constraint{Key: "rack", Op: txn.OpIn, Values: []string{"r1", "r2"}}},
		{"rack in(r1)", txn.Constraint{Key: "rack", Op: txn.OpIn, Values: []string{"r1"}}},
		{"rack notin (r3)", txn.Constraint{Key: "rack", Op: txn.OpNotIn, Values: []string{"r3"}}},
		{"zone != b", txn.Constraint{Key: "zone", Op: txn.OpNotIn, Values: []string{"b"}}},
		{"zone!=b", txn.Constraint{Key: "zone", Op: txn.OpNotIn, Values: []string{"b"}}},
		{"gpu.model = H100", txn.Constraint{Key: "gpu.model", Op: txn.OpIn, Values: []string{"H100"}}},
		{"gpu.model=A100-80GB", txn.Constraint{Key: "gpu.model", Op: txn.OpIn, Values: []string{"A100-80GB"}}},
		{"zone == a", txn.Constraint{Key: "zone", Op: txn.OpIn, Values: []string{"a"}}},
		{"ssd", txn.Constraint{Key: "ssd", Op: txn.OpExists}},
		{"  ssd  ", txn.Constraint{Key: "ssd", Op: txn.OpExists}},
		{"!ssd", txn.Constraint{Key: "ssd", Op: txn.OpDoesNotExist}},
		{"! ssd", txn.Constraint{Key: "ssd", Op: txn.OpDoesNotExist}},
		{"example.com/team in (infra)", txn.Constraint{Key: "example.com/team", Op: txn.OpIn, Values: []string{"infra"}}},
	}
	for _, c := range good {
		got, err := ParseConstraint(c.in)
		if err != nil {
			t.Errorf("ParseConstraint(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseConstraint(%q) = %+v, want %+v", c.in, got, c.want)
		}
		// txn's rendering parses back to the same term.
		if again, err := ParseConstraint(got.String()); err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseConstraint(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}

	bad := []struct{ in, wantErr string }{
		{"", "empty selector"},
		{"rack in r1", `want "(" after "in"`},
		{"rack in ()", "needs at least one value"},
		{"rack in (r1", `missing closing ")"`},
		{"rack in (r1) x", `unexpected "x" after ")"`},
		{"rack in ((r1)", "unexpected parenthesis"},
		{"rack in (r1))", `unexpected ")" after ")"`},
		{"rack in (r1,,r2)", "empty value"},
		{"rack in (r1, r1)", `value "r1" listed twice`},
		{"rack notin (bad value)", `label value "bad value"`},
		{"zone ~ b", `unknown operator "~"`},
		{"zone >= b", `unknown operator ">="`},
		{"= b", "missing label key"},
		{"!= b", "missing label key"},
		{"zone =", `missing value after "="`},
		{"zone != ", `missing value after "!="`},
		{"-zone", `label key "-zone"`},
		{"!", `label key ""`},
		{"zone = " + strings.Repeat("v", 64), "longer than 63"},
	}
	for _, c := range bad {
		got, err := ParseConstraint(c.in)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("ParseConstraint(%q) = %+v, %v; want error containing %q", c.in, got, err, c.wantErr)
		}
	}
}
