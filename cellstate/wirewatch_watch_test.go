package cellstate

import (
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// TestWatchCatchesUpFromDiskThroughBigRevisions: watchers far behind the
// hub's ring (it is emptied) read the log back from Pebble in reads of at
// most diskBytes, through revisions larger than that and than a message
// (sent as fragments). Each gets every revision it should exactly once,
// in order, and the same messages as the decoding reference produced:
// the admin the full revisions, a scheduler every revision redacted, a
// fleet agent its machines' changes and every job redacted, an agent its
// machine's changes.
func TestWatchCatchesUpFromDiskThroughBigRevisions(t *testing.T) {
	c := newAuthzCell(t)
	admin, batch := c.as(&adminIdentity), c.as(mustID(t, identity.Scheduler, "batch"))
	fleetID := mustFleet(t, "node")
	for _, m := range []string{"node-1", "node-2", "other"} {
		if _, err := admin.machines.RegisterMachine(ctxT(t), &cellv1.RegisterMachineRequest{
			Id: m, Labels: map[string]string{"zone": "a", "rack": m}, Capacity: &cellv1.Resources{CpuMilli: 8000, MemoryBytes: 8 * gib},
		}); err != nil {
			t.Fatal(err)
		}
	}
	submit := func(spec *cellv1.JobSpec) *cellv1.Job {
		r, err := admin.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: spec})
		if err != nil {
			t.Fatalf("submit %s: %v", spec.Name, err)
		}
		return r.Job
	}
	stop := func(j *cellv1.Job) {
		if _, err := admin.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: j.Id}); err != nil {
			t.Fatal(err)
		}
	}
	secret := submit(secretSpec("secret", 4))
	res := secret.Spec.Task.Resources
	if _, err := batch.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{
		claim(secret.Id, 0, "node-1", res), claim(secret.Id, 1, "node-2", res), claim(secret.Id, 2, "other", res),
	}}); err != nil {
		t.Fatal(err)
	}
	big := submit(secretSpec("big", 60_000)) // a submit of ~6 MB: fragments
	stop(big)
	submit(batchSpec("plain", 2, 100, 1<<20))
	stop(secret) // its tasks leave node-1, node-2 and other

	h := c.store.hub
	h.diskBytes = 256 << 10 // below the big job's revisions, above the others
	h.mu.Lock()
	h.ring, h.bytes = nil, 0 // every watcher is far behind
	head := h.head
	h.mu.Unlock()
	var entries []logEntry
	bigger, message := 0, 0
	for _, e := range diskEntries(t, c.store) {
		if e.rev <= head {
			entries = append(entries, e)
		}
		if len(e.data) > h.diskBytes {
			bigger++
		}
		if len(e.data) > chunkBytes {
			message++
		}
	}
	if bigger < 2 || message < 1 {
		t.Fatalf("%d revisions larger than a read, %d than a message: want the big job's submit and stop (in slices), its submit", bigger, message)
	}

	full := func(e logEntry) (*cellv1.WatchResponse, error) {
		r := &cellv1.WatchResponse{}
		return r, proto.Unmarshal(e.data, r)
	}
	redacted := func(e logEntry) (*cellv1.WatchResponse, error) {
		data, err := decodedRedactedData(e)
		if err != nil {
			return nil, err
		}
		r := &cellv1.WatchResponse{}
		return r, proto.Unmarshal(data, r)
	}
	filtered := func(v watchView) func(logEntry) (*cellv1.WatchResponse, error) {
		return func(e logEntry) (*cellv1.WatchResponse, error) { return decodedFilter(e, v) }
	}
	for _, w := range []struct {
		name    string
		client  *client
		machine string
		want    func(logEntry) (*cellv1.WatchResponse, error)
		secrets bool
	}{
		{"admin", admin, "", full, true},
		{"scheduler", batch, "", redacted, false},
		{"fleet", c.as(fleetID), "", filtered(watchView{match: fleetID.SpeaksFor, jobs: true}), false},
		{"agent", c.as(mustID(t, identity.Agent, "node-1")), "node-1", filtered(watchView{match: func(m string) bool { return m == "node-1" }}), false},
	} {
		t.Run(w.name, func(t *testing.T) {
			want := map[uint64]*cellv1.WatchResponse{}
			last := uint64(0)
			for _, e := range entries {
				r, err := w.want(e)
				if err != nil {
					t.Fatal(err)
				}
				if r != nil {
					want[e.rev], last = r, e.rev
				}
			}
			stream, err := w.client.state.Watch(longCtx(t), &cellv1.WatchRequest{StartRevision: entries[0].rev - 1, MachineId: w.machine})
			if err != nil {
				t.Fatal(err)
			}
			got, frags := receiveUpTo(t, stream, last)
			if len(want) < 2 {
				t.Fatalf("the reference sends %d revisions: the test data lost this watcher's changes", len(want))
			}
			if w.machine == "" && w.name != "fleet" && frags == 0 {
				t.Error("no revision came in fragments")
			}
			if len(got) != len(want) {
				t.Errorf("%d revisions received, want %d", len(got), len(want))
			}
			for rev, r := range got {
				if !proto.Equal(r, want[rev]) {
					t.Fatalf("revision %d differs from the reference (%d changes, want %d)", rev, len(r.Changes), len(want[rev].GetChanges()))
				}
				if !w.secrets && strings.Contains(r.String(), "s3cr3t") {
					t.Fatalf("revision %d carries a secret", rev)
				}
			}
		})
	}
}

// receiveUpTo reads a watch stream up to revision last, reassembling
// fragments; a revision received twice or out of order fails the test.
func receiveUpTo(t *testing.T, stream grpc.ServerStreamingClient[cellv1.WatchResponse], last uint64) (map[uint64]*cellv1.WatchResponse, int) {
	t.Helper()
	got := map[uint64]*cellv1.WatchResponse{}
	var cur *cellv1.WatchResponse
	prev, frags := uint64(0), 0
	for prev < last {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("after revision %d: %v", prev, err)
		}
		if r.ProgressNotify {
			if cur != nil || r.Revision < prev {
				t.Fatalf("progress at %d inside or before revision %d", r.Revision, prev)
			}
			continue
		}
		if cur == nil {
			cur = &cellv1.WatchResponse{Revision: r.Revision}
		} else if r.Revision != cur.Revision {
			t.Fatalf("fragment of revision %d inside revision %d", r.Revision, cur.Revision)
		}
		cur.Changes = append(cur.Changes, r.Changes...)
		if r.Fragment {
			frags++
			continue
		}
		if cur.Revision <= prev {
			t.Fatalf("revision %d after %d", cur.Revision, prev)
		}
		got[cur.Revision], prev, cur = cur, cur.Revision, nil
	}
	return got, frags
}
