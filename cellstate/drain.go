package cellstate

import (
	"context"
	"fmt"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/pbconv/apicheck"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// Cordons and drains (issue 14).
//
// A cordoned machine takes no new placements (its state is DRAINING,
// which txn refuses claims on) and keeps what runs on it. Its record holds
// a cellv1.MachineDrain, so the cordon survives the machine going down and
// up again and a server restart: a cordoned machine that heartbeats again
// comes back DRAINING, not READY.
//
// A drain is a cordon plus evictions, done by the store itself: once per
// drainEvery the drain controller runs one operation in the commit loop
// that, for every draining machine, evicts (sends back to pending under
// its scheduler) each task whose job can lose one more task: fewer of its
// tasks are unavailable (pending or assigned) than its disruption budget
// (JobSpec.disruption.max_unavailable; default 1 for a service, no limit
// for a batch job). Evicted replicas are placed again by their schedulers
// elsewhere; the next eviction of the job waits until they run. At the
// deadline whatever is left is evicted at once. With ignore_batch, batch
// tasks are left to finish (until the deadline).
//
// The controller lives in the store because only the store sees every
// job's replicas consistently: the decision and the eviction are one
// transaction against the state they were decided on, so two machines
// draining at once can never together exceed a budget, and no scheduler or
// agent has to cooperate. It keeps no state of its own: everything is in
// the machine records, so a restarted server resumes each drain where it
// was, with its deadline. Its cost when nothing drains is one read-locked
// check of a counter per drainEvery.

// drainEvery is how often the drain controller steps. A step that changes
// nothing writes nothing.
const drainEvery = 100 * time.Millisecond

// Drain defaults and bounds.
const (
	DefaultDrainDeadline = time.Hour
	MaxDrainDeadline     = 30 * 24 * time.Hour
)

// drainRunner owns the drain controller's goroutine.
type drainRunner struct {
	stop chan struct{}
	done chan struct{}
}

func (d *drainRunner) start(s *Store) {
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.done)
		s.stepWhileDue(d.stop, drainEvery, 30*time.Second, "drain step",
			func(st *state) bool { return len(st.draining) > 0 }, drainStepOp{})
	}()
}

// stepWhileDue is the clock of a controller inside the commit loop (the
// drain controller here, the rollout controller in update.go): every
// `every` until stop closes, it runs op if due reports work for it. due
// is checked under the read lock, so an idle clock costs one read-locked
// check per tick and writes nothing. A failed step is logged unless the
// store is closing.
func (s *Store) stepWhileDue(stop <-chan struct{}, every, timeout time.Duration, what string, due func(*state) bool, op operation) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s.mu.RLock()
		work := due(s.st)
		s.mu.RUnlock()
		if !work || s.closing() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		if _, _, err := s.do(ctx, op); err != nil && s.Err() == nil && !s.closing() {
			s.log.Warn(what, "err", err)
		}
		cancel()
	}
}

func (d *drainRunner) close() {
	if d.stop != nil {
		close(d.stop)
		<-d.done
	}
}

// DrainMachine cordons, uncordons or drains a machine (see DrainAction).
func (s *Store) DrainMachine(ctx context.Context, req *cellv1.DrainMachineRequest) (*cellv1.Machine, uint64, error) {
	res, rev, err := s.do(ctx, drainOp{req: req})
	if err != nil {
		return nil, 0, err
	}
	return res.(*machine).pb(), rev, nil
}

func validateDrainMachine(r *cellv1.DrainMachineRequest) error {
	return checked(apicheck.DrainMachine(r))
}

// drainAction is the request's action, legacy form resolved.
func drainAction(r *cellv1.DrainMachineRequest) cellv1.DrainAction {
	if a := r.GetAction(); a != cellv1.DrainAction_DRAIN_ACTION_UNSPECIFIED {
		return a
	}
	if r.GetDrain() {
		return cellv1.DrainAction_DRAIN_ACTION_DRAIN
	}
	return cellv1.DrainAction_DRAIN_ACTION_UNCORDON
}

type drainOp struct{ req *cellv1.DrainMachineRequest }

func (o drainOp) run(s *state) (any, error) {
	id := o.req.GetId()
	old := s.machines[id]
	if old == nil {
		return nil, status.Errorf(codes.NotFound, "id: machine %q does not exist", id)
	}
	var d *cellv1.MachineDrain
	switch drainAction(o.req) {
	case cellv1.DrainAction_DRAIN_ACTION_CORDON:
		if old.drain != nil {
			return old, nil // cordoned already (a drain in progress goes on)
		}
		d = &cellv1.MachineDrain{CordonTimeUnixNano: s.now}
	case cellv1.DrainAction_DRAIN_ACTION_UNCORDON:
		d = nil
	case cellv1.DrainAction_DRAIN_ACTION_DRAIN:
		deadline := time.Duration(o.req.GetDeadlineMs()) * time.Millisecond
		if deadline == 0 {
			deadline = DefaultDrainDeadline
		}
		d = &cellv1.MachineDrain{CordonTimeUnixNano: s.now, Draining: true, DrainStartUnixNano: s.now,
			DeadlineUnixNano: s.now + int64(deadline), IgnoreBatch: o.req.GetIgnoreBatch()}
		if old.drain != nil {
			d.CordonTimeUnixNano = old.drain.CordonTimeUnixNano
		}
	default:
		return nil, status.Errorf(codes.InvalidArgument, "action: unknown drain action %d", o.req.GetAction())
	}
	s.setDrain(old, d)
	s.reconcileMachine(id) // a cordoned machine leaves system jobs (system.go)
	if d.GetDraining() {
		s.drainMachine(id) // the first step at once: a machine with nothing to wait for is done now
	}
	return s.machines[id], nil
}

// setDrain installs a new version of machine old with drain record d and
// the state that goes with it (DRAINING when cordoned, READY when not;
// DOWN stays DOWN).
func (s *state) setDrain(old *machine, d *cellv1.MachineDrain) {
	m := old.m.Clone()
	switch {
	case m.State == txn.MachineDown:
	case d != nil:
		m.State = txn.MachineDraining
	default:
		m.State = txn.MachineReady
	}
	if m.State != old.m.State {
		m.Seq++
	}
	nm := *old
	nm.m = m
	nm.drain = d
	s.installMachine(&nm)
	if m.State != old.m.State {
		s.reconcileMachine(m.ID) // system.go: a system job leaves a cordoned machine, returns when uncordoned
	}
}

// noteDrain keeps s.draining: the machines whose drain is in progress.
func (s *state) noteDrain(m *machine) {
	if m.drain.GetDraining() && m.drain.GetDoneUnixNano() == 0 {
		s.draining[m.m.ID] = true
	} else {
		delete(s.draining, m.m.ID)
	}
}

// drainStepOp steps every drain in progress.
type drainStepOp struct{}

func (drainStepOp) run(s *state) (any, error) {
	ids := make([]string, 0, len(s.draining))
	for id := range s.draining {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s.drainMachine(id)
	}
	return nil, nil
}

// drainMachine evicts what the budgets allow from one draining machine,
// everything once the deadline passed, and records the progress.
func (s *state) drainMachine(id string) {
	old := s.machines[id]
	if old == nil || !old.drain.GetDraining() || old.drain.GetDoneUnixNano() != 0 {
		return
	}
	d := proto.Clone(old.drain).(*cellv1.MachineDrain)
	forced := s.now >= d.DeadlineUnixNano
	d.Waiting = ""
	left := 0
	for _, k := range s.tasksOn(id) {
		j := s.jobs[k.Job]
		batch := j.job.GetSpec().GetKind() != cellv1.JobKind_JOB_KIND_SERVICE
		switch {
		case forced:
			s.requeue(k, "machine drained (deadline reached)", 0)
			d.Forced++
			continue
		case batch && d.IgnoreBatch:
			continue // left to finish; the drain does not wait for it
		}
		if budget := disruptionBudget(j.job.GetSpec()); budget > 0 {
			if down := unavailable(j); down >= budget {
				left++
				if d.Waiting == "" {
					d.Waiting = fmt.Sprintf("job %s has %d of %d tasks unavailable (disruption budget %d)",
						j.job.GetSpec().GetName(), down, j.job.GetSpec().GetCount(), budget)
				}
				continue
			}
		}
		s.requeue(k, "machine drained", 0)
		d.Evicted++
	}
	d.Remaining = uint32(len(s.tasksOn(id)))
	if forced || left == 0 {
		d.DoneUnixNano = s.now
	}
	if cur := s.machines[id]; !proto.Equal(d, cur.drain) {
		s.setDrain(cur, d) // cur: the evictions installed new versions
	}
}

// disruptionBudget is how many of a job's tasks a drain may make
// unavailable at once (0: no limit).
func disruptionBudget(spec *cellv1.JobSpec) uint32 {
	if n := spec.GetDisruption().GetMaxUnavailable(); n > 0 {
		return n
	}
	if spec.GetKind() == cellv1.JobKind_JOB_KIND_SERVICE {
		return 1
	}
	return 0
}

// unavailable counts a job's tasks that should run and do not: pending
// (placed again after an eviction, a failure or a lost machine) or
// assigned (placed, not started yet).
func unavailable(j *jobEntry) uint32 {
	return j.counts[txn.TaskPending] + j.counts[txn.TaskAssigned]
}
