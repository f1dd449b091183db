package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
)

// observer follows the cell through one unfiltered watch, as a scheduler
// or an agent fleet does, and times every task of the benchmark's jobs:
// submitted (the submitter's clock, or the due time in a rate phase) →
// placed (the watch shows it assigned to a machine, i.e. durably
// committed and published) → running (the simulated agent saw the
// assignment and its report was committed). All three clocks are this
// process's, so in-process and --server runs measure the same thing.
type observer struct {
	state cellv1.StateServiceClient

	mu     sync.Mutex
	byName map[string]*jobTrack // submitted, id not seen yet

	// Owned by the run goroutine.
	byID     map[string]*jobTrack
	machines map[string]int32     // machine id → index+1
	cell     *cellv1.CellIdentity // of the last snapshot or watch answer

	revision    atomic.Uint64
	resnapshots atomic.Int64
	err         atomic.Pointer[error]
	done        chan struct{}
}

// jobTrack is what the observer knows of one submitted job.
type jobTrack struct {
	phase    *phaseTrack
	name     string
	tasks    uint32
	submit   time.Time
	id       string
	placedOn []int32 // machine index+1 of the first placement; 0: none yet
	flags    []uint8
}

// Flags of a task.
const (
	flagRunning uint8 = 1 << iota
	flagReplaced
)

// phaseTrack collects one phase's figures as the observer sees them.
type phaseTrack struct {
	name    string
	measure bool

	expected atomic.Int64 // tasks of jobs registered so far
	placed   atomic.Int64
	running  atomic.Int64
	// worst is the longest submit→placed (ns) since the sampler last took
	// it: a stall shows as a spike in the per-interval series.
	worst atomic.Int64

	mu        sync.Mutex
	toPlaced  *hdrhistogram.Histogram // µs
	toRunning *hdrhistogram.Histogram // µs
	submitRPC *hdrhistogram.Histogram // µs, SubmitJob round trips
	first     time.Time               // first submission
	last      time.Time               // latest first placement
	problems  []string                // first few anomalies seen
	moved     int                     // tasks seen placed on a second machine
	replaced  int                     // tasks placed again (attempt > 1)
	ended     int                     // tasks seen lost, failed, preempted or killed
}

// maxProblems bounds the anomalies kept per phase.
const maxProblems = 10

func newPhaseTrack(name string, measure bool) *phaseTrack {
	return &phaseTrack{name: name, measure: measure, toPlaced: newLatencyHistogram(),
		toRunning: newLatencyHistogram(), submitRPC: newLatencyHistogram()}
}

// newLatencyHistogram records 1 µs .. 1 h with 3 significant digits.
func newLatencyHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)
}

func recordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	_ = h.RecordValue(max(int64(d/time.Microsecond), 1)) // beyond an hour is clamped by the caller's timeout
}

func (p *phaseTrack) problem(format string, args ...any) {
	if len(p.problems) < maxProblems {
		p.problems = append(p.problems, fmt.Sprintf(format, args...))
	}
}

func newObserver(state cellv1.StateServiceClient) *observer {
	return &observer{state: state, byName: map[string]*jobTrack{}, byID: map[string]*jobTrack{},
		machines: map[string]int32{}, done: make(chan struct{})}
}

// expect registers a job about to be submitted; its changes are recognised
// by name (the watch shows the job before any of its tasks).
func (o *observer) expect(j *jobTrack) {
	j.placedOn = make([]int32, j.tasks)
	j.flags = make([]uint8, j.tasks)
	o.mu.Lock()
	o.byName[j.name] = j
	o.mu.Unlock()
	j.phase.mu.Lock()
	if j.phase.first.IsZero() || j.submit.Before(j.phase.first) {
		j.phase.first = j.submit
	}
	j.phase.mu.Unlock()
	j.phase.expected.Add(int64(j.tasks))
}

// fail records the observer's first fatal error.
func (o *observer) fail(err error) { o.err.CompareAndSwap(nil, &err) }

// Err is the error that stopped the observer, if any.
func (o *observer) Err() error {
	if p := o.err.Load(); p != nil {
		return *p
	}
	return nil
}

// start reads a snapshot for the starting revision and follows the cell
// from there until ctx ends.
func (o *observer) start(ctx context.Context) error {
	rev, err := o.snapshot(ctx)
	if err != nil {
		return err
	}
	go func() {
		defer close(o.done)
		o.follow(ctx, rev)
	}()
	return nil
}

// follow watches from rev, resuming after a broken stream and reading a
// new snapshot when the watch start was compacted (the observer fell
// behind the change log).
func (o *observer) follow(ctx context.Context, rev uint64) {
	for ctx.Err() == nil {
		stream, err := o.state.Watch(ctx, &cellv1.WatchRequest{StartRevision: rev})
		if err == nil {
			rev, err = o.receive(stream, rev)
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errCompacted):
			o.resnapshots.Add(1)
			if rev, err = o.snapshot(ctx); err != nil && ctx.Err() == nil {
				o.fail(fmt.Errorf("observer: resnapshot: %w", err))
				return
			}
		case status.Code(err) == codes.Unavailable || errors.Is(err, io.EOF):
			time.Sleep(50 * time.Millisecond)
		default:
			o.fail(fmt.Errorf("observer: watch from revision %d: %w", rev, err))
			return
		}
	}
}

var errCompacted = errors.New("watch start compacted")

// receive applies watch responses until the stream ends; it returns the
// last revision applied. Fragments of a revision are joined first, and an
// answer from another cell incarnation than the last one seen (a restarted
// server) is treated as a compacted start: the observer reads a snapshot.
func (o *observer) receive(stream cellv1.StateService_WatchClient, rev uint64) (uint64, error) {
	var whole cellclient.Assembler
	for {
		r, err := stream.Recv()
		if err != nil {
			return rev, err
		}
		if r.CompactRevision != 0 {
			return rev, errCompacted
		}
		if !cellclient.SameCell(o.cell, r.GetCell()) {
			o.cell = r.GetCell()
			return rev, errCompacted
		}
		o.cell = r.GetCell()
		if r, err = whole.Add(r); err != nil {
			return rev, err
		}
		if r == nil {
			continue
		}
		if r.ProgressNotify || len(r.Changes) == 0 {
			continue
		}
		now := time.Now()
		for _, c := range r.Changes {
			switch obj := c.Object.(type) {
			case *cellv1.Change_Job:
				o.job(obj.Job)
			case *cellv1.Change_Task:
				o.task(obj.Task, now)
			}
		}
		rev = r.Revision
		o.revision.Store(rev)
	}
}

// snapshot reads the whole cell, applies it as changes seen now and
// returns its revision.
func (o *observer) snapshot(ctx context.Context) (uint64, error) {
	snap, err := readSnapshot(ctx, o.state)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	for _, j := range snap.jobs {
		o.job(j)
	}
	for _, t := range snap.tasks {
		o.task(t, now)
	}
	o.revision.Store(snap.revision)
	o.cell = snap.cell
	return snap.revision, nil
}

// job maps a benchmark job's id on its first change.
func (o *observer) job(j *cellv1.Job) {
	if _, ok := o.byID[j.Id]; ok {
		return
	}
	o.mu.Lock()
	tr := o.byName[j.GetSpec().GetName()]
	delete(o.byName, j.GetSpec().GetName())
	o.mu.Unlock()
	if tr != nil {
		tr.id = j.Id
		o.byID[j.Id] = tr
	}
}

// task records a change of one task of a benchmark job.
func (o *observer) task(t *cellv1.Task, now time.Time) {
	tr := o.byID[t.JobId]
	if tr == nil || t.Index >= tr.tasks {
		return
	}
	p, i := tr.phase, t.Index
	switch t.State {
	case cellv1.TaskState_TASK_STATE_ASSIGNED, cellv1.TaskState_TASK_STATE_RUNNING, cellv1.TaskState_TASK_STATE_SUCCEEDED:
	case cellv1.TaskState_TASK_STATE_PENDING:
		return
	default:
		p.mu.Lock()
		p.ended++
		p.problem("task %s/%d (%s) went %s: %s", tr.name, i, t.JobId, t.State, t.Message)
		p.mu.Unlock()
		return
	}
	m := o.machineIndex(t.MachineId)
	switch on := tr.placedOn[i]; {
	case on == 0:
		tr.placedOn[i] = m
		p.placed.Add(1)
		p.mu.Lock()
		wait := now.Sub(tr.submit)
		recordLatency(p.toPlaced, wait)
		p.last = now
		p.mu.Unlock()
		if int64(wait) > p.worst.Load() {
			p.worst.Store(int64(wait)) // only this goroutine raises it
		}
	case on != m:
		p.mu.Lock()
		p.moved++
		p.problem("task %s/%d (%s) placed on a second machine %s", tr.name, i, t.JobId, t.MachineId)
		p.mu.Unlock()
		tr.placedOn[i] = m
	}
	if t.Attempt > 1 && tr.flags[i]&flagReplaced == 0 {
		tr.flags[i] |= flagReplaced
		p.mu.Lock()
		p.replaced++
		p.problem("task %s/%d (%s) is at attempt %d", tr.name, i, t.JobId, t.Attempt)
		p.mu.Unlock()
	}
	if t.State != cellv1.TaskState_TASK_STATE_ASSIGNED && tr.flags[i]&flagRunning == 0 {
		tr.flags[i] |= flagRunning
		p.running.Add(1)
		p.mu.Lock()
		recordLatency(p.toRunning, now.Sub(tr.submit))
		p.mu.Unlock()
	}
}

func (o *observer) machineIndex(id string) int32 {
	m, ok := o.machines[id]
	if !ok {
		m = int32(len(o.machines) + 1)
		o.machines[id] = m
	}
	return m
}

// cellSnapshot is the whole cell read through StateService.Snapshot.
type cellSnapshot struct {
	revision uint64
	cell     *cellv1.CellIdentity
	machines []*cellv1.Machine
	jobs     []*cellv1.Job
	tasks    []*cellv1.Task
}

// snapshotChunk is the most objects per snapshot message the server sends.
const snapshotChunk = 65536

func readSnapshot(ctx context.Context, state cellv1.StateServiceClient) (*cellSnapshot, error) {
	stream, err := state.Snapshot(ctx, &cellv1.SnapshotRequest{ChunkSize: snapshotChunk})
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	s := &cellSnapshot{}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		if s.revision == 0 {
			s.revision, s.cell = r.Revision, r.GetCell()
		}
		s.machines = append(s.machines, r.Machines...)
		s.jobs = append(s.jobs, r.Jobs...)
		s.tasks = append(s.tasks, r.Tasks...)
		if r.Last {
			return s, nil
		}
	}
}
