package cellstate

import (
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// benchCommitThroughputQuota is CommitThroughput/synced with every job in
// tenant "bench" under a batch quota that every claim is checked against
// (large enough to accept them all), and a second tenant with a quota so
// that the borrowing arithmetic has more than one tenant to sum.
func benchCommitThroughputQuota(b *testing.B) {
	benchCommitThroughputAs(b, Options{}, false, func(c *testCell) string {
		big := &cellv1.QuotaAmounts{CpuMilli: 1 << 39, MemoryBytes: 1 << 59}
		for _, name := range []string{"bench", "other"} {
			if _, err := cellv1.NewTenantServiceClient(c.conn).UpdateTenant(ctxT(b), &cellv1.UpdateTenantRequest{
				Tenant: &cellv1.Tenant{Name: name, Batch: &cellv1.BandQuota{Nominal: big}},
			}); err != nil {
				b.Fatal(err)
			}
		}
		return "bench"
	})
}
