package cellstate

import (
	"context"
	"sort"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// The Store's Go API. Writes go through the commit loop and return once
// durable, with the revision they got (0 if nothing changed). Requests are
// assumed valid (the gRPC layer validates them, naming the field).

// Commit validates and applies a scheduler's transaction.
func (s *Store) Commit(ctx context.Context, tx *txn.Transaction) (*CommitResult, uint64, error) {
	return s.CommitAs(ctx, tx, "")
}

// CommitAs commits for the scheduler identity by (as identity.String
// writes it): a claim of a task whose job names another scheduler refuses
// the whole transaction with an authz.Denial. An empty by (admin, or an
// insecure cell) leaves that to txn (per-claim WRONG_SCHEDULER).
func (s *Store) CommitAs(ctx context.Context, tx *txn.Transaction, by string) (*CommitResult, uint64, error) {
	res, rev, err := s.do(ctx, newCommitOp(tx, by))
	if err != nil {
		return nil, 0, err
	}
	return res.(*CommitResult), rev, nil
}

// SubmitJob creates a job and its pending tasks.
func (s *Store) SubmitJob(ctx context.Context, spec *cellv1.JobSpec) (*cellv1.Job, uint64, error) {
	res, rev, err := s.do(ctx, prepareSubmit(spec, s.opts.Now().UnixNano(), s.revHint.Load()+1))
	if err != nil {
		return nil, 0, err
	}
	return res.(*cellv1.Job), rev, nil
}

// StopJob kills a job's unfinished tasks, freeing their resources.
func (s *Store) StopJob(ctx context.Context, idOrName string) (*cellv1.Job, uint64, error) {
	return s.StopJobBy(ctx, idOrName, "")
}

// StopJobBy is StopJob for the identity by (as identity.String writes
// it), which the killed tasks' events name.
func (s *Store) StopJobBy(ctx context.Context, idOrName, by string) (*cellv1.Job, uint64, error) {
	res, rev, err := s.do(ctx, &stopOp{idOrName: idOrName, by: by})
	if err != nil {
		return nil, 0, err
	}
	return res.(*cellv1.Job), rev, nil
}

// SetJobSchedulingStatus records a scheduler's verdict on a job.
func (s *Store) SetJobSchedulingStatus(ctx context.Context, req *cellv1.SetJobSchedulingStatusRequest) (uint64, error) {
	_, rev, err := s.do(ctx, setJobStatusOp{req: req})
	return rev, err
}

// RegisterMachine creates or updates a machine.
func (s *Store) RegisterMachine(ctx context.Context, req *cellv1.RegisterMachineRequest) (*cellv1.Machine, uint64, error) {
	return s.RegisterMachineAs(ctx, req, "")
}

// RegisterMachineAs registers a machine for an agent identity (by, as
// identity.String writes it): a machine registered by one agent identity
// is refused to any other (authz.RuleRegistrant). An empty by (admin, or
// an insecure cell) keeps the machine's registrant.
func (s *Store) RegisterMachineAs(ctx context.Context, req *cellv1.RegisterMachineRequest, by string) (*cellv1.Machine, uint64, error) {
	res, rev, err := s.do(ctx, registerMachineOp{req: req, by: by})
	if err != nil {
		return nil, 0, err
	}
	return res.(*machine).pb(), rev, nil
}

// ReportTaskStates applies an agent's task updates, each fenced by attempt.
func (s *Store) ReportTaskStates(ctx context.Context, machineID string, updates []*cellv1.TaskStateUpdate) ([]*cellv1.UpdateResult, uint64, error) {
	res, rev, err := s.do(ctx, agentUpdatesOp{machine: machineID, updates: updates})
	if err != nil {
		return nil, 0, err
	}
	return res.([]*cellv1.UpdateResult), rev, nil
}

// RegisterScheduler makes a scheduler name valid for jobs and commits.
func (s *Store) RegisterScheduler(ctx context.Context, name string) (uint64, error) {
	// A full cell refuses new names without queueing for the commit loop
	// (the loop checks again: this is only the cheap early answer).
	s.mu.RLock()
	err := error(nil)
	if !s.st.schedulers[name] {
		err = s.st.refuseScheduler()
	}
	s.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	_, rev, err := s.do(ctx, registerSchedulerOp{name: name})
	return rev, err
}

func (s *Store) markDown(ctx context.Context, ids []string) ([]string, error) {
	res, _, err := s.do(ctx, markDownOp{ids: ids})
	if err != nil {
		return nil, err
	}
	downed, _ := res.([]string)
	return downed, nil
}

func (s *Store) markUp(ctx context.Context, ids []string) error {
	_, _, err := s.do(ctx, markUpOp{ids: ids})
	return err
}

// --- reads ---

// GetJob returns a job, its task counts and optionally its tasks.
func (s *Store) GetJob(idOrName string, withTasks bool) (*cellv1.GetJobResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	j, err := s.st.lookupJob(idOrName)
	if err != nil {
		return nil, err
	}
	out := &cellv1.GetJobResponse{Job: j.job, Counts: j.taskCounts(), Revision: s.st.rev}
	if withTasks {
		out.Tasks = make([]*cellv1.Task, len(j.tasks))
		for i, t := range j.tasks {
			out.Tasks[i] = t.pbWithEvents()
		}
	}
	return out, nil
}

// Task returns one task of a job (by id or name) without copying the
// job's other tasks.
func (s *Store) Task(idOrName string, index uint32) (*cellv1.Task, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	j, err := s.st.lookupJob(idOrName)
	if err != nil {
		return nil, err
	}
	if int(index) >= len(j.tasks) {
		return nil, status.Errorf(codes.NotFound, "task.index: job %s has %d tasks, no index %d", j.job.Id, len(j.tasks), index)
	}
	return j.tasks[index].pbWithEvents(), nil
}

// GetMachine returns a machine and the tasks placed on it.
func (s *Store) GetMachine(id string) (*cellv1.GetMachineResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.st.machines[id]
	if m == nil {
		return nil, status.Errorf(codes.NotFound, "id: machine %q does not exist", id)
	}
	out := &cellv1.GetMachineResponse{Machine: m.pb()}
	for _, k := range s.st.tasksOn(id) {
		out.Tasks = append(out.Tasks, s.st.task(k).pb())
	}
	return out, nil
}

// Schedulers returns registered scheduler names and their pending tasks.
func (s *Store) Schedulers() (names []string, pending map[string]int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pending = make(map[string]int, len(s.st.schedulers))
	for n := range s.st.schedulers {
		names = append(names, n)
		pending[n] = s.st.pendingBySched[n]
	}
	sort.Strings(names)
	return names, pending
}

// Snapshot is a consistent copy of the cell at one revision. Objects are
// shared immutable versions; only the slices are copied.
type Snapshot struct {
	Revision uint64
	machines []*machine
	jobs     []*cellv1.Job
	tasks    [][]*task        // per job, same order as jobs
	tenants  []*cellv1.Tenant // created tenants with usage (tenancy)
}

// Snapshot captures the cell at its current durable revision.
func (s *Store) Snapshot() *Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	snap := &Snapshot{
		Revision: s.st.rev,
		machines: make([]*machine, 0, len(s.st.machines)),
		jobs:     make([]*cellv1.Job, 0, len(s.st.jobs)),
		tasks:    make([][]*task, 0, len(s.st.jobs)),
		tenants:  s.st.tenantList(),
	}
	for _, m := range s.st.machines {
		snap.machines = append(snap.machines, m)
	}
	for _, j := range s.st.jobs {
		snap.jobs = append(snap.jobs, j.job)
		snap.tasks = append(snap.tasks, append([]*task(nil), j.tasks...))
	}
	return snap
}
