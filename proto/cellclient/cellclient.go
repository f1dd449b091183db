package cellclient

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// MaxMessageBytes is the largest message the server sends or accepts; a
// client's receive limit (grpc.MaxCallRecvMsgSize) should be this.
const MaxMessageBytes = limits.MaxRequestBytes

// maxPages bounds one listing (a million objects at the default page
// size), so a broken server cannot keep a client paging forever.
const maxPages = 2000

// ListJobs returns every job the request selects, following pages from
// req.PageToken (normally empty). The answer's revision is the first
// page's.
func ListJobs(ctx context.Context, c cellv1.JobServiceClient, req *cellv1.ListJobsRequest, opts ...grpc.CallOption) (*cellv1.ListJobsResponse, error) {
	out := &cellv1.ListJobsResponse{}
	next := &cellv1.ListJobsRequest{Scheduler: req.GetScheduler(), IncludeFinished: req.GetIncludeFinished(), PageSize: req.GetPageSize(), PageToken: req.GetPageToken()}
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("list jobs: more than %d pages", maxPages)
		}
		r, err := c.ListJobs(ctx, next, opts...)
		if err != nil {
			return nil, err
		}
		if page == 0 {
			out.Revision = r.GetRevision()
		}
		out.Jobs = append(out.Jobs, r.GetJobs()...)
		if r.GetNextPageToken() == "" {
			return out, nil
		}
		next.PageToken = r.GetNextPageToken()
	}
}

// ListMachines returns every machine, following pages.
func ListMachines(ctx context.Context, c cellv1.MachineServiceClient, req *cellv1.ListMachinesRequest, opts ...grpc.CallOption) (*cellv1.ListMachinesResponse, error) {
	out := &cellv1.ListMachinesResponse{}
	next := &cellv1.ListMachinesRequest{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()}
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("list machines: more than %d pages", maxPages)
		}
		r, err := c.ListMachines(ctx, next, opts...)
		if err != nil {
			return nil, err
		}
		if page == 0 {
			out.Revision = r.GetRevision()
		}
		out.Machines = append(out.Machines, r.GetMachines()...)
		if r.GetNextPageToken() == "" {
			return out, nil
		}
		next.PageToken = r.GetNextPageToken()
	}
}

// Assembler joins the fragments of a watch revision. The zero value is
// ready; use one per watch stream.
type Assembler struct {
	rev     uint64
	pending []*cellv1.Change
}

// Add takes the next response of the stream. It returns the whole
// revision once its last fragment arrived (a response that is not a
// fragment is returned as it is, with any earlier fragments' changes put
// first), or nil while fragments are pending. A fragment of another
// revision than the pending ones is an error: the stream is broken.
func (a *Assembler) Add(r *cellv1.WatchResponse) (*cellv1.WatchResponse, error) {
	if a.rev != 0 && (r.GetRevision() != a.rev || r.GetProgressNotify() || r.GetCompactRevision() != 0) {
		return nil, fmt.Errorf("watch: revision %d arrived in the middle of revision %d's fragments", r.GetRevision(), a.rev)
	}
	if r.GetFragment() {
		a.rev = r.GetRevision()
		a.pending = append(a.pending, r.GetChanges()...)
		return nil, nil
	}
	if a.rev != 0 {
		r.Changes = append(a.pending, r.GetChanges()...)
		a.rev, a.pending = 0, nil
	}
	return r, nil
}

// SameCell reports whether two answers come from the same cell
// incarnation. An answer without an identity (a server that predates
// them) matches anything.
func SameCell(a, b *cellv1.CellIdentity) bool {
	if a.GetId() == "" || b.GetId() == "" {
		return true
	}
	return a.GetId() == b.GetId() && a.GetIncarnation() == b.GetIncarnation()
}

// Describe names an identity for messages: "cell <uuid> incarnation 3".
func Describe(c *cellv1.CellIdentity) string {
	if c.GetId() == "" {
		return "a cell without identity"
	}
	return fmt.Sprintf("cell %s incarnation %d", c.GetId(), c.GetIncarnation())
}
