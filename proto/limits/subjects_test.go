package limits

import (
	"strings"
	"testing"
)

func TestLogsSubject(t *testing.T) {
	tests := []struct {
		id, want string
		ok       bool
	}{
		{"m1", "omegacell.logs.m1", true},
		{"node-1.example.com", "omegacell.logs.node-1~example~com", true},
		{"a_b.c-d", "omegacell.logs.a_b~c-d", true},
		{"", "", false},
		{"a b", "", false},
		{"a.*", "", false},
		{"a>", "", false},
		{"a~b", "", false},
		{strings.Repeat("x", 254), "", false},
	}
	for _, tt := range tests {
		got, err := LogsSubject("omegacell", tt.id)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("LogsSubject(%q) = %q, %v; want %q (ok %v)", tt.id, got, err, tt.want, tt.ok)
		}
		if err != nil && len(err.Error()) > 160 {
			t.Errorf("error for %d bytes quotes too much: %d bytes", len(tt.id), len(err.Error()))
		}
	}
	// One-to-one: ids that differ only where one has '.' and the other a
	// character the escape could be confused with get different tokens.
	a, _ := MachineToken("a.b")
	b, _ := MachineToken("a_b")
	c, _ := MachineToken("a-b")
	if a == b || a == c || strings.ContainsAny(a, ".*> \t") {
		t.Errorf("tokens %q %q %q", a, b, c)
	}
}
