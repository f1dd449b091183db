package webui

import (
	"fmt"
	"testing"

	"github.com/omegacell/omegacell/proto/identity"
)

// A client's dirty set is bounded: past maxDirty rows it turns into one
// full resend, however fast the cell changes and however slow the page.
func TestClientDirtySetIsBounded(t *testing.T) {
	c := newClient(identity.Identity{Role: identity.Admin})
	c.take() // the first full
	ids := make([]string, 1000)
	for round := range 30 {
		for i := range ids {
			ids[i] = fmt.Sprintf("m-%d-%d", round, i)
		}
		c.mark(ids, ids)
		if n := len(c.ms) + len(c.js); n > maxDirty {
			t.Fatalf("round %d: %d dirty rows held, bound %d", round, n, maxDirty)
		}
	}
	full, ms, js := c.take()
	if !full || len(ms)+len(js) != 0 {
		t.Fatalf("after 60,000 changes: full=%v with %d rows; want one full resend", full, len(ms)+len(js))
	}
	c.mark([]string{"a"}, nil)
	c.mark([]string{"a"}, nil)
	if full, ms, _ := c.take(); full || len(ms) != 1 {
		t.Fatalf("a row changed twice: full=%v rows=%d; want it once", full, len(ms))
	}
}
