package cellstate

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate/authz"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/proto/wirefmt"
)

// The reference: how a revision read back from Pebble was redacted and
// filtered before wirewatch.go, by decoding all of it. Kept here only to
// prove the wire forms equivalent and to measure them against it.

func decodedRedactedData(e logEntry) ([]byte, error) {
	all := &cellv1.WatchResponse{}
	if err := proto.Unmarshal(e.data, all); err != nil {
		return nil, err
	}
	changed := false
	for _, c := range all.Changes {
		if j := c.GetJob(); j != nil {
			if r := authz.RedactJob(j); r != j {
				c.Object = &cellv1.Change_Job{Job: r}
				changed = true
			}
		}
	}
	if !changed {
		return e.data, nil
	}
	return marshal.Marshal(all)
}

func decodedFilter(e logEntry, v watchView) (*cellv1.WatchResponse, error) {
	out := &cellv1.WatchResponse{Revision: e.rev}
	full := &cellv1.WatchResponse{}
	if err := proto.Unmarshal(e.data, full); err != nil {
		return nil, err
	}
	for _, c := range full.Changes {
		switch {
		case c.GetMachine() != nil && v.match(c.GetMachine().GetId()):
			out.Changes = append(out.Changes, c)
		case c.GetTask() != nil && ((c.GetTask().MachineId != "" && v.match(c.GetTask().MachineId)) ||
			(c.GetTask().LastMachineId != "" && v.match(c.GetTask().LastMachineId))):
			out.Changes = append(out.Changes, c)
		case c.GetJob() != nil && v.jobs:
			out.Changes = append(out.Changes, &cellv1.Change{Object: &cellv1.Change_Job{Job: authz.RedactJob(c.GetJob())}})
		}
	}
	if len(out.Changes) == 0 {
		return nil, nil
	}
	return out, nil
}

// diskEntries reads every revision of the store's log from Pebble.
func diskEntries(t testing.TB, st *Store) []logEntry {
	t.Helper()
	it, err := st.db.NewIter(&pebble.IterOptions{LowerBound: logKey(0), UpperBound: logKey(1<<64 - 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []logEntry
	for it.First(); it.Valid(); it.Next() {
		out = append(out, logEntry{rev: decodeLogKey(it.Key()), data: append([]byte(nil), it.Value()...)})
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

// secretSpec is a job whose task carries every redacted field.
func secretSpec(name string, count uint32) *cellv1.JobSpec {
	s := batchSpec(name, count, 100, 1<<20)
	s.Task.Env = map[string]string{"SECRET": "s3cr3t", "OTHER": "x"}
	s.Task.Args = []string{"--token", "s3cr3t"}
	s.Task.HealthCheck = &cellv1.HealthCheck{Exec: []string{"probe", "s3cr3t"}, IntervalMs: 1000}
	return s
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawChange is a changes field holding the given Change body bytes.
func rawChange(body ...[]byte) []byte {
	var ch []byte
	for _, x := range body {
		ch = append(ch, x...)
	}
	return protowire.AppendBytes(protowire.AppendTag(nil, fieldWatchChanges, protowire.BytesType), ch)
}

// handEntries are revisions of shapes the store does not write but a
// decoder accepts: both paths must agree on them too.
func handEntries(t testing.TB) map[string]logEntry {
	task := func(m, last string) *cellv1.Change {
		return &cellv1.Change{Object: &cellv1.Change_Task{Task: &cellv1.Task{JobId: "j", Index: 1, MachineId: m, LastMachineId: last}}}
	}
	machine := func(id string) *cellv1.Change {
		return &cellv1.Change{Object: &cellv1.Change_Machine{Machine: &cellv1.Machine{Id: id, Labels: map[string]string{"a": "1", "b": "2", "c": "3"}}}}
	}
	secret := &cellv1.Change{Object: &cellv1.Change_Job{Job: &cellv1.Job{Id: "s", Spec: secretSpec("s", 1)}}}
	bare := &cellv1.Change{Object: &cellv1.Change_Job{Job: &cellv1.Job{Id: "bare", State: cellv1.JobState_JOB_STATE_RUNNING}}}
	resp := func(cs ...*cellv1.Change) []byte {
		return mustMarshal(t, &cellv1.WatchResponse{Revision: 9, Changes: cs})
	}
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 999, protowire.VarintType), 7)
	head := protowire.AppendVarint(protowire.AppendTag(nil, fieldWatchRevision, protowire.VarintType), 9)
	join := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	return map[string]logEntry{
		"empty":                {rev: 9, data: head},
		"machines and tasks":   {rev: 9, data: resp(machine("m1"), machine("fleet-2"), task("m1", ""), task("", "fleet-2"), task("", ""))},
		"bare job only":        {rev: 9, data: resp(machine("m1"), bare, task("m1", "m2"))},
		"secret among others":  {rev: 9, data: resp(machine("m1"), bare, secret, task("fleet-7", ""), &cellv1.Change{Object: &cellv1.Change_Deleted{Deleted: &cellv1.Deletion{Object: &cellv1.Deletion_JobId{JobId: "old"}}}})},
		"tenant":               {rev: 9, data: resp(&cellv1.Change{Object: &cellv1.Change_Tenant{Tenant: &cellv1.Tenant{Name: "t"}}}, task("m1", ""))},
		"task then job object": {rev: 9, data: join(head, rawChange(mustMarshal(t, task("m1", "")), mustMarshal(t, secret)))},
		"job then task object": {rev: 9, data: join(head, rawChange(mustMarshal(t, secret), mustMarshal(t, task("m1", ""))))},
		"unknown change field": {rev: 9, data: join(head, rawChange(unknown, mustMarshal(t, task("fleet-3", ""))), rawChange(unknown, mustMarshal(t, secret)))},
		"empty changes":        {rev: 9, data: join(head, rawChange(), rawChange(mustMarshal(t, &cellv1.Change{Object: &cellv1.Change_Job{Job: &cellv1.Job{}}})))},
		"unknown top field":    {rev: 9, data: join(head, unknown, rawChange(mustMarshal(t, secret)), unknown)},
		// A field of the wrong wire type is an unknown field to a decoder.
		"changes as varint": {rev: 9, data: join(head, []byte{0x10, 0x01}, rawChange(mustMarshal(t, task("m1", ""))))},
		"ids as varints": {rev: 9, data: join(head,
			rawChange(protowire.AppendVarint(protowire.AppendTag(nil, fieldChangeMachine, protowire.VarintType), 3)),
			rawChange(protowire.AppendVarint(protowire.AppendTag(nil, fieldChangeJob, protowire.VarintType), 3)),
			rawChange(mustMarshal(t, task("m1", "")), protowire.AppendVarint(protowire.AppendTag(nil, wirefmt.TaskMachine, protowire.VarintType), 3)))},
	}
}

// cellEntries are the revisions a real store wrote: machines (with
// labels), jobs with and without secrets, placements, a stop.
func cellEntries(t testing.TB) []logEntry {
	c := newTestCell(t, Options{NoSync: true})
	for _, m := range []string{"m1", "fleet-1", "fleet-2"} {
		c.addMachine(m, map[string]string{"zone": "a", "rack": m}, 8000, 8*gib, 0)
	}
	secret := c.submit(secretSpec("secret", 4))
	plain := c.submit(batchSpec("plain", 2, 100, 1<<20))
	res := secret.Spec.Task.Resources
	if _, err := c.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{
		claim(secret.Id, 0, "m1", res), claim(secret.Id, 1, "fleet-1", res), claim(secret.Id, 2, "fleet-2", res), claim(plain.Id, 0, "fleet-1", res),
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: secret.Id}); err != nil {
		t.Fatal(err)
	}
	c.addMachine("fleet-3", nil, 1000, gib, 0)
	return diskEntries(t, c.store)
}

// wireViews are filtered views as viewFor makes them.
var wireViews = map[string]watchView{
	"machine m1":    {match: func(m string) bool { return m == "m1" }, redact: true},
	"fleet":         {match: func(m string) bool { return strings.HasPrefix(m, "fleet-") }, jobs: true, redact: true},
	"nothing, jobs": {match: func(string) bool { return false }, jobs: true, redact: true},
	"everything":    {match: func(string) bool { return true }},
}

// TestWireRedactAndFilterAgreeWithDecoding: for every revision, the wire
// forms decode to the messages the decoding reference produced; where the
// reference sent the revision's own bytes, so does the wire form.
func TestWireRedactAndFilterAgreeWithDecoding(t *testing.T) {
	entries := map[string]logEntry{}
	for name, e := range handEntries(t) {
		entries["hand/"+name] = e
	}
	for _, e := range cellEntries(t) {
		entries[fmt.Sprintf("cell/rev%d", e.rev)] = e
	}
	redacted := 0
	for name, e := range entries {
		t.Run(name, func(t *testing.T) {
			want, err := decodedRedactedData(e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.redactedData()
			if err != nil {
				t.Fatal(err)
			}
			refSame, gotSame := &want[0] == &e.data[0], &got[0] == &e.data[0]
			// The reference sent a shadowed job's secret (a Change whose
			// job a later object overrides) as is; the wire form not.
			leaked := refSame && strings.Contains(string(want), "s3cr3t")
			if refSame != gotSame && !leaked {
				t.Fatalf("the entry's own bytes returned by the reference: %v, by the wire form: %v", refSame, gotSame)
			}
			if !refSame {
				redacted++
			}
			if strings.Contains(string(got), "s3cr3t") {
				t.Error("redacted form carries the secret")
			}
			equalDecoded(t, "redacted", got, want)
			// Fragments of the wire form reassemble to the same revision.
			frags, err := fragments(got, 64)
			if err != nil {
				t.Fatal(err)
			}
			all := &cellv1.WatchResponse{}
			for _, f := range frags {
				r := &cellv1.WatchResponse{}
				if err := proto.Unmarshal(f, r); err != nil {
					t.Fatal(err)
				}
				all.Revision, all.Changes = r.Revision, append(all.Changes, r.Changes...)
			}
			w := &cellv1.WatchResponse{}
			if err := proto.Unmarshal(want, w); err != nil {
				t.Fatal(err)
			}
			equalDecoded(t, "fragments", mustMarshal(t, all), mustMarshal(t, &cellv1.WatchResponse{Revision: w.Revision, Changes: w.Changes}))

			for vname, v := range wireViews {
				ref, err := decodedFilter(e, v)
				if err != nil {
					t.Fatal(err)
				}
				got, all, err := e.filter(v)
				if err != nil || all {
					t.Fatalf("%s: filter: all=%v err=%v", vname, all, err)
				}
				if strings.Contains(string(got), "s3cr3t") {
					t.Errorf("%s: filtered form carries the secret", vname)
				}
				if (ref == nil) != (got == nil) {
					t.Fatalf("%s: reference kept %v, wire form %x", vname, ref, got)
				}
				if ref != nil {
					equalDecoded(t, vname, got, mustMarshal(t, ref))
				}
			}
		})
	}
	if redacted < 4 {
		t.Fatalf("only %d revisions needed redaction: the test data lost its secrets", redacted)
	}
}

func equalDecoded(t *testing.T, what string, got, want []byte) {
	t.Helper()
	g, w := &cellv1.WatchResponse{}, &cellv1.WatchResponse{}
	if err := proto.Unmarshal(got, g); err != nil {
		t.Fatalf("%s: decode: %v", what, err)
	}
	if err := proto.Unmarshal(want, w); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(g, w) {
		t.Fatalf("%s:\n got %v\nwant %v", what, g, w)
	}
}

// TestWireRejectsGarbage: bytes that are not a WatchResponse are an error
// (with the revision), never a panic or a silent pass.
func TestWireRejectsGarbage(t *testing.T) {
	for name, data := range map[string][]byte{
		"bad tag":           {0xff},
		"truncated changes": {0x12, 0x10, 0x0a},
		"bad job":           rawChange([]byte{0x12, 0x02, 0xff, 0xff}),
	} {
		t.Run(name, func(t *testing.T) {
			e := logEntry{rev: 5, data: data}
			if _, err := e.redactedData(); err == nil || !strings.Contains(err.Error(), "entry 5") {
				t.Errorf("redact: %v", err)
			}
			if _, _, err := e.filter(wireViews["nothing, jobs"]); err == nil || !strings.Contains(err.Error(), "entry 5") {
				t.Errorf("filter: %v", err)
			}
		})
	}
}

// TestReadDiskBounded: a watcher reading the log from Pebble gets every
// revision once and in order, at most diskBytes of them per read (one
// when a revision alone is larger), for bounds below, between and above
// the revisions' sizes; a hole in the log is a CompactedError when the
// read reaches it.
func TestReadDiskBounded(t *testing.T) {
	c := newTestCell(t, Options{NoSync: true})
	c.addMachine("m1", nil, 1000, gib, 0)
	for i := range 6 {
		c.submit(batchSpec(fmt.Sprintf("j%d", i), uint32(1+i*400), 1, 1))
	}
	c.addMachine("m2", nil, 1000, gib, 0)
	want := diskEntries(t, c.store)
	biggest := 0
	for _, e := range want {
		biggest = max(biggest, len(e.data))
	}
	h := c.store.hub
	h.mu.Lock()
	h.ring, h.bytes = nil, 0 // every watcher is behind the ring
	h.mu.Unlock()
	for _, bound := range []int{1, 100, biggest / 2, biggest, 1 << 30} {
		t.Run(fmt.Sprint(bound), func(t *testing.T) {
			h.diskBytes = bound
			after, i, reads := want[0].rev-1, 0, 0
			for {
				got, head, _, err := h.read(after, watchReadBatch)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) == 0 {
					if head != after {
						t.Fatalf("no revisions after %d, head %d", after, head)
					}
					break
				}
				reads++
				size := 0
				for _, e := range got {
					size += len(e.data)
					if i >= len(want) || e.rev != want[i].rev || string(e.data) != string(want[i].data) {
						t.Fatalf("read %d: revision %d, want %v", reads, e.rev, want[i].rev)
					}
					i++
					after = e.rev
				}
				if len(got) > 1 && size > bound {
					t.Fatalf("read %d: %d revisions of %d bytes, bound %d", reads, len(got), size, bound)
				}
			}
			if i != len(want) {
				t.Fatalf("read %d of %d revisions", i, len(want))
			}
			if bound == 1 && reads != len(want) || bound == 1<<30 && reads != 1 {
				t.Fatalf("%d reads of %d revisions under bound %d", reads, len(want), bound)
			}
		})
	}
	// A hole (compaction racing the read): the revisions before it come
	// within the bound, the read that reaches it fails.
	hole := want[3].rev
	if err := c.store.db.Delete(logKey(hole), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	h.diskBytes = len(want[0].data) + len(want[1].data)
	got, _, _, err := h.read(want[0].rev-1, watchReadBatch)
	if err != nil || len(got) != 2 {
		t.Fatalf("before the hole: %d revisions, %v", len(got), err)
	}
	got, _, _, err = h.read(got[1].rev, watchReadBatch)
	var ce *CompactedError
	if !errors.As(err, &ce) || ce.Compacted < hole {
		t.Fatalf("read across the hole at %d: %v %v", hole, got, err)
	}
}

// BenchmarkRedactFromDisk: a scheduler's (redacted) and an agent's
// (filtered) form of a revision read back from Pebble: a 100,000-task
// submission of a job with env. "decode" is the former way (the whole
// revision decoded), "wire" the one of wirewatch.go.
func BenchmarkRedactFromDisk(b *testing.B) {
	c := newTestCell(b, Options{NoSync: true})
	c.addMachine("m1", nil, 1000, gib, 0)
	c.submit(secretSpec("big", limits.MaxTasksPerJob))
	all := diskEntries(b, c.store)
	e := all[len(all)-1]
	b.Logf("revision %d: %d bytes", e.rev, len(e.data))
	agent := wireViews["machine m1"]
	for _, bc := range []struct {
		name string
		fn   func() error
	}{
		{"redact/decode", func() error { _, err := decodedRedactedData(e); return err }},
		{"redact/wire", func() error { _, err := e.redactedData(); return err }},
		{"filter/decode", func() error {
			r, err := decodedFilter(e, agent)
			if err == nil && r != nil {
				_, err = marshal.Marshal(r)
			}
			return err
		}},
		{"filter/wire", func() error { _, _, err := e.filter(agent); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
