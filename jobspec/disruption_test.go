package jobspec

import (
	"strings"
	"testing"
)

func TestDisruptionBudget(t *testing.T) {
	tests := []struct {
		yaml string
		want uint32
		err  string
	}{
		{"disruption: {maxUnavailable: 2}", 2, ""},
		{"", 0, ""},
		{"disruption: {maxUnavailable: 0}", 0, "out of range 1..3"},
		{"disruption: {maxUnavailable: 4}", 0, "out of range 1..3"},
		{"disruption: {maxUnavailabel: 1}", 0, "did you mean"},
	}
	for _, tt := range tests {
		doc := "name: web\nkind: service\ncount: 3\n" + tt.yaml + "\ntask: {command: sleep, resources: {cpu: 1}}\n"
		spec, err := Parse([]byte(doc))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("%q: error %v, want one containing %q", tt.yaml, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.yaml, err)
		}
		if got := spec.GetDisruption().GetMaxUnavailable(); got != tt.want {
			t.Fatalf("%q: maxUnavailable %d, want %d", tt.yaml, got, tt.want)
		}
		back, err := Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(back)
		if err != nil || again.GetDisruption().GetMaxUnavailable() != tt.want {
			t.Fatalf("round trip of %q: %v %v", tt.yaml, again, err)
		}
	}
}
