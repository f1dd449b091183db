package cellstate

import (
	"container/heap"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/proto/wirefmt"
)

// Reads that could return the whole cell are bounded in bytes as well as
// in count, so any legal cell fits the wire: Snapshot is streamed in
// chunks of at most chunkBytes (watch.go), and ListJobs and ListMachines
// return pages, as etcd's and Kubernetes' list calls do (a limit and a
// continue token). A page holds at most page_size objects (default
// defaultPageSize, at most maxPageSize) and at most pageBytes of them (at
// least one object, however large: the per-job size bound keeps one object
// well below the send limit).
//
// Tokens are cursors, not offsets: they hold the sort key of the last
// object returned, and the next page starts strictly after it. So a
// listing that runs while jobs or machines come and go returns every
// object present throughout exactly once, in one stable order, and never
// fails because of a change. A token is opaque to clients (base64url of
// a versioned text), bounded in size and checked: a malformed token, or
// one made for other filters, is InvalidArgument naming page_token.
const (
	defaultPageSize = 500
	maxPageSize     = 5000
	pageBytes       = 16 << 20
	maxTokenBytes   = 1024
)

// pageSize validates a request's page_size.
func pageSize(n uint32) (int, error) {
	switch {
	case n == 0:
		return defaultPageSize, nil
	case n > maxPageSize:
		return 0, invalid("page_size", "%d exceeds %d", n, maxPageSize)
	}
	return int(n), nil
}

// jobQuery is what a job listing filters on; a token is only valid for
// the query that made it.
type jobQuery struct {
	scheduler       string
	includeFinished bool
}

// jobCursor is a job's place in the listing order: newest first (submit
// time descending), ties by id.
type jobCursor struct {
	submit int64
	id     string
}

// before reports whether a comes before b in the listing order.
func (a jobCursor) before(b jobCursor) bool {
	if a.submit != b.submit {
		return a.submit > b.submit
	}
	return a.id < b.id
}

const jobTokenVersion = "j1"

func encodeJobToken(c jobCursor, q jobQuery) string {
	text := strings.Join([]string{jobTokenVersion, strconv.FormatInt(c.submit, 10), c.id, q.scheduler, strconv.FormatBool(q.includeFinished)}, "|")
	return base64.RawURLEncoding.EncodeToString([]byte(text))
}

// decodeJobToken returns the cursor a page token holds (nil: first page).
func decodeJobToken(tok string, q jobQuery) (*jobCursor, error) {
	if tok == "" {
		return nil, nil
	}
	bad := func(why string) error {
		return invalid("page_token", "%s (pass next_page_token of the previous page unchanged)", why)
	}
	if len(tok) > maxTokenBytes {
		return nil, bad("longer than " + strconv.Itoa(maxTokenBytes) + " bytes")
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, bad("not a page token")
	}
	f := strings.Split(string(raw), "|")
	if len(f) != 5 || f[0] != jobTokenVersion {
		return nil, bad("not a job list page token")
	}
	submit, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return nil, bad("not a job list page token")
	}
	if _, err := uuid.Parse(f[2]); err != nil {
		return nil, bad("not a job list page token")
	}
	if f[3] != q.scheduler || f[4] != strconv.FormatBool(q.includeFinished) {
		return nil, bad("made for other filters (scheduler, include_finished)")
	}
	c := &jobCursor{submit: submit, id: f[2]}
	if encodeJobToken(*c, q) != tok { // only tokens the server made
		return nil, bad("not a job list page token")
	}
	return c, nil
}

const machineTokenVersion = "m1"

func encodeMachineToken(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(machineTokenVersion + "|" + id))
}

// decodeMachineToken returns the id a page token continues after (""
// for the first page).
func decodeMachineToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	bad := invalid("page_token", "not a machine list page token (pass next_page_token of the previous page unchanged)")
	if len(tok) > maxTokenBytes {
		return "", bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", bad
	}
	id, ok := strings.CutPrefix(string(raw), machineTokenVersion+"|")
	if !ok || !limits.MachineName.MatchString(id) || encodeMachineToken(id) != tok {
		return "", bad
	}
	return id, nil
}

// jobHeap keeps the page's candidates: a max-heap in listing order, so
// the root is the candidate that would be listed last and is dropped
// first when a better one comes.
type jobHeap []*jobEntry

func cursorOf(j *jobEntry) jobCursor {
	return jobCursor{submit: j.job.SubmitTimeUnixNano, id: j.job.Id}
}

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(a, b int) bool { return cursorOf(h[b]).before(cursorOf(h[a])) }
func (h jobHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *jobHeap) Push(x any)        { *h = append(*h, x.(*jobEntry)) }
func (h *jobHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// listJobsPage returns up to size jobs (and at most maxBytes of them, at
// least one) of the query that come after the cursor. It costs one pass
// over the jobs and O(log size) per candidate, under the read lock.
func (s *Store) listJobsPage(q jobQuery, after *jobCursor, size, maxBytes int) *cellv1.ListJobsResponse {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := &cellv1.ListJobsResponse{Revision: s.st.rev}
	h := make(jobHeap, 0, min(size+1, len(s.st.jobs)))
	more := false
	for _, j := range s.st.jobs {
		if (q.scheduler != "" && j.job.Spec.GetScheduler() != q.scheduler) || (!q.includeFinished && !jobLive(j.job)) {
			continue
		}
		if after != nil && !after.before(cursorOf(j)) {
			continue
		}
		heap.Push(&h, j)
		if len(h) > size {
			heap.Pop(&h)
			more = true
		}
	}
	page := make([]*jobEntry, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		page[i] = heap.Pop(&h).(*jobEntry)
	}
	bytes := 0
	for i, j := range page {
		sum := &cellv1.JobSummary{Job: j.job, Counts: j.taskCounts()}
		n := marshal.Size(sum) + 8
		if i > 0 && bytes+n > maxBytes {
			more = true
			break
		}
		bytes += n
		out.Jobs = append(out.Jobs, sum)
	}
	if more && len(out.Jobs) > 0 {
		last := out.Jobs[len(out.Jobs)-1].Job
		out.NextPageToken = encodeJobToken(jobCursor{submit: last.SubmitTimeUnixNano, id: last.Id}, q)
	}
	return out
}

// listMachinesPage returns up to size machines by id (and at most
// maxBytes of them, at least one) after the id `after`.
func (s *Store) listMachinesPage(after string, size, maxBytes int) *cellv1.ListMachinesResponse {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := &cellv1.ListMachinesResponse{Revision: s.st.rev}
	ids := make([]string, 0, min(len(s.st.machines), 4*size))
	for id := range s.st.machines {
		if after == "" || id > after {
			ids = append(ids, id)
		}
	}
	more := len(ids) > size
	slices.Sort(ids)
	ids = ids[:min(len(ids), size)]
	bytes := 0
	for i, id := range ids {
		m := s.st.machines[id].pb()
		n := marshal.Size(m) + 8
		if i > 0 && bytes+n > maxBytes {
			more = true
			break
		}
		bytes += n
		out.Machines = append(out.Machines, m)
	}
	if more && len(out.Machines) > 0 {
		out.NextPageToken = encodeMachineToken(out.Machines[len(out.Machines)-1].Id)
	}
	return out
}

// encodeChunks streams the snapshot as encoded SnapshotResponse messages
// of at most maxObjects objects and (but for one object larger than that)
// maxBytes of them: machines, then each job followed by its tasks. Every
// chunk carries the revision and the identity suffix; the last one has
// last set. Objects are encoded once, straight into the chunk, with the
// store's own encoders.
func (snap *Snapshot) encodeChunks(maxObjects, maxBytes int, identity []byte, send func([]byte) error) error {
	const (
		fieldRevision = wirefmt.SnapRevision
		fieldMachines = wirefmt.SnapMachines
		fieldJobs     = wirefmt.SnapJobs
		fieldTasks    = wirefmt.SnapTasks
		fieldLast     = wirefmt.SnapLast
		fieldTenants  = wirefmt.SnapTenants
	)
	newChunk := func() []byte {
		b := make([]byte, 0, 64<<10)
		b = protowire.AppendTag(b, fieldRevision, protowire.VarintType)
		b = protowire.AppendVarint(b, snap.Revision)
		return append(b, identity...)
	}
	cur, n, header := newChunk(), 0, 0
	header = len(cur)
	var item []byte
	add := func(field protowire.Number) error {
		need := protowire.SizeTag(field) + protowire.SizeBytes(len(item))
		if n > 0 && (n >= maxObjects || len(cur)-header+need > maxBytes) {
			if err := send(cur); err != nil {
				return err
			}
			cur, n = newChunk(), 0
		}
		cur = protowire.AppendTag(cur, field, protowire.BytesType)
		cur = protowire.AppendBytes(cur, item)
		n++
		return nil
	}
	for _, t := range snap.tenants {
		var err error
		if item, err = marshal.MarshalAppend(item[:0], t); err != nil {
			return err
		}
		if err := add(fieldTenants); err != nil {
			return err
		}
	}
	for _, m := range snap.machines {
		item = appendMachineRecord(item[:0], m)
		if err := add(fieldMachines); err != nil {
			return err
		}
	}
	for i, j := range snap.jobs {
		var err error
		if item, err = marshal.MarshalAppend(item[:0], j); err != nil {
			return err
		}
		if err := add(fieldJobs); err != nil {
			return err
		}
		for _, t := range snap.tasks[i] {
			item = appendTaskRecord(item[:0], t)
			if err := add(fieldTasks); err != nil {
				return err
			}
		}
	}
	cur = protowire.AppendTag(cur, fieldLast, protowire.VarintType)
	cur = protowire.AppendVarint(cur, 1)
	return send(cur)
}
