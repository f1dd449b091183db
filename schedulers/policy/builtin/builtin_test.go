package builtin

import (
	"slices"
	"testing"
)

func TestRegistry(t *testing.T) {
	if got, want := Registry().Names(), []string{"batch", "gpu", "service"}; !slices.Equal(got, want) {
		t.Errorf("names = %v, want %v", got, want)
	}
	for _, name := range []string{"batch", "service", "gpu"} {
		p, err := Lookup(name)
		if err != nil || p.Name() != name {
			t.Errorf("Lookup(%q) = %v, %v", name, p, err)
		}
	}
	if _, err := Lookup("fifo"); err == nil || err.Error() != `policy "fifo": unknown (known: batch, gpu, service)` {
		t.Errorf("Lookup(fifo) error = %v", err)
	}
}
