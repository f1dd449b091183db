package view

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// checkIndexes recomputes every index from the objects and compares.
func checkIndexes(t *testing.T, v *View) {
	t.Helper()
	var ready []int32
	labels := map[string]map[string][]int32{}
	var gpus []int32
	wholeFree := map[int][]int32{}
	for ord, m := range v.machines {
		if m == nil || m.State != txn.MachineReady {
			continue
		}
		o := int32(ord)
		ready = append(ready, o)
		for k, val := range m.Labels {
			if labels[k] == nil {
				labels[k] = map[string][]int32{}
			}
			labels[k][val] = append(labels[k][val], o)
		}
		if m.Devices() > 0 {
			gpus = append(gpus, o)
			k := wholeFreeDevices(m)
			wholeFree[k] = append(wholeFree[k], o)
		}
	}
	if !slices.Equal(ready, v.Ready()) {
		t.Errorf("ready = %v, want %v", v.Ready(), ready)
	}
	if !slices.Equal(gpus, v.GPUMachines()) {
		t.Errorf("gpu machines = %v, want %v", v.GPUMachines(), gpus)
	}
	for k := 0; k <= v.MaxDevices(); k++ {
		if !slices.Equal(wholeFree[k], v.WithWholeFreeDevices(k)) {
			t.Errorf("machines with %d whole free devices = %v, want %v", k, v.WithWholeFreeDevices(k), wholeFree[k])
		}
	}
	if len(labels) != len(v.labels) {
		t.Errorf("label keys = %d, want %d", len(v.labels), len(labels))
	}
	for k, byVal := range labels {
		vals := slices.Sorted(maps.Keys(byVal))
		if !slices.Equal(vals, v.LabelValues(k)) {
			t.Errorf("label %s values = %v, want %v", k, v.LabelValues(k), vals)
		}
		for val, ords := range byVal {
			if !slices.Equal(ords, v.WithLabel(k, val)) {
				t.Errorf("label %s=%s = %v, want %v", k, val, v.WithLabel(k, val), ords)
			}
		}
	}
	residents := map[int32][]txn.TaskKey{}
	on := map[string]map[int32]uint32{}
	pending := map[string][]uint32{}
	gpuReq := map[int64]int{}
	for _, task := range v.Tasks() {
		k := task.Key
		if task.State.HoldsResources() {
			ord := v.ordinals[task.Machine]
			residents[ord] = append(residents[ord], k)
			if on[k.Job] == nil {
				on[k.Job] = map[int32]uint32{}
			}
			on[k.Job][ord]++
		}
		if task.State == txn.TaskPending {
			pending[k.Job] = append(pending[k.Job], k.Index)
		}
		if task.Resources.GPUMilli > 0 && (task.State == txn.TaskPending || task.State.HoldsResources()) {
			gpuReq[task.Resources.GPUMilli]++
		}
	}
	for ord := range v.residents {
		var got []txn.TaskKey
		for i, task := range v.TasksOn(int32(ord)) {
			got = append(got, task.Key)
			if v.Task(task.Key) != task {
				t.Errorf("machine %d resident %s is a stale version", ord, task.Key)
			}
			if at := v.jobs[task.Key.Job].residesAt[task.Key.Index]; at != int32(i) {
				t.Errorf("machine %d resident %s is at %d, indexed at %d", ord, task.Key, i, at)
			}
		}
		want := residents[int32(ord)]
		cmpKey := func(a, b txn.TaskKey) int {
			if a.Job != b.Job {
				if a.Job < b.Job {
					return -1
				}
				return 1
			}
			return int(a.Index) - int(b.Index)
		}
		slices.SortFunc(got, cmpKey)
		slices.SortFunc(want, cmpKey)
		if !slices.Equal(got, want) {
			t.Errorf("machine %d residents = %v, want %v", ord, got, want)
		}
	}
	for id, je := range v.jobs {
		if !maps.Equal(je.on, on[id]) && !(len(je.on) == 0 && len(on[id]) == 0) {
			t.Errorf("job %s on = %v, want %v", id, je.on, on[id])
		}
		var got []uint32
		for _, task := range v.Pending(id) {
			got = append(got, task.Key.Index)
			if v.Task(task.Key) != task {
				t.Errorf("pending %s is a stale version", task.Key)
			}
		}
		want := pending[id]
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("job %s pending = %v, want %v", id, got, want)
		}
		holding := 0
		for _, task := range je.tasks {
			if task.State.HoldsResources() {
				holding++
			}
		}
		if len(je.residesAt) != holding {
			t.Errorf("job %s: %d resident positions for %d resource-holding tasks", id, len(je.residesAt), holding)
		}
		if _, has := v.withPending[id]; has != (len(want) > 0) {
			t.Errorf("job %s in withPending = %v, want %v", id, has, len(want) > 0)
		}
	}
	if !maps.Equal(gpuReq, v.gpuRequests) {
		t.Errorf("gpu requests = %v, want %v", v.gpuRequests, gpuReq)
	}
}

func machine(id string, labels map[string]string, cpu int64, gpus int64) *txn.Machine {
	return txn.NewMachine(id, labels, txn.Resources{CPUMilli: cpu, MemoryBytes: 1 << 34, GPUMilli: gpus * txn.MilliPerGPU})
}

// TestIndexesFollowRandomChanges drives a view through random machine and
// task changes made with txn (Validate/Apply and Transition, as the store
// makes them) and checks every index against a recomputation after each.
func TestIndexesFollowRandomChanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	v := New()
	racks := []string{"r1", "r2", "r3"}
	for i := range 12 {
		labels := map[string]string{"rack": racks[i%3], "zone": fmt.Sprint("z", i%2)}
		var gpus int64
		if i%3 == 0 {
			gpus, labels["gpu.model"] = 4, "H100"
		}
		v.PutMachine(machine(fmt.Sprint("m", i), labels, 8000, gpus))
	}
	job := JobInfo{ID: "j", Scheduler: "s", Priority: 100, Resources: txn.Resources{CPUMilli: 1000, GPUMilli: 500}, MaxPerMachine: 3}
	v.PutJob(job)
	for i := range 20 {
		v.PutTask(job.NewTask(uint32(i)))
	}
	checkIndexes(t, v)
	placed, moved := 0, 0
	for step := range 400 {
		switch op := rng.IntN(5); op {
		case 0, 1: // place a pending task
			pend := v.Pending("j")
			if len(pend) == 0 {
				continue
			}
			task := pend[rng.IntN(len(pend))]
			m := v.MachineAt(int32(rng.IntN(v.NumOrdinals())))
			d, _ := txn.AssignDevices(m, task.Resources.GPUMilli)
			tx := &txn.Transaction{Scheduler: "s", Conflict: txn.ConflictFine, Commit: txn.CommitIncremental,
				Claims: []txn.Claim{{Task: task.Key, Machine: m.ID, Resources: task.Resources, Devices: d}}}
			dec := txn.Validate(v, tx)
			placed += dec.Accepted
			txn.Apply(v, dec)
		case 2: // a placed task ends or goes back to pending
			var held []*txn.Task
			for _, task := range v.Tasks() {
				if task.State.HoldsResources() {
					held = append(held, task)
				}
			}
			if len(held) == 0 {
				continue
			}
			to := []txn.TaskState{txn.TaskRunning, txn.TaskPending, txn.TaskSucceeded, txn.TaskLost}[rng.IntN(4)]
			nt, nm, err := txn.Transition(v, held[rng.IntN(len(held))].Key, to)
			if err != nil {
				continue
			}
			if nm != nil {
				v.PutMachine(nm)
			}
			v.PutTask(nt)
			moved++
		case 3: // a machine changes state or labels
			m := v.MachineAt(int32(rng.IntN(v.NumOrdinals()))).Clone()
			m.State = []txn.MachineState{txn.MachineReady, txn.MachineDraining, txn.MachineDown}[rng.IntN(3)]
			if rng.IntN(2) == 0 {
				m.Labels = map[string]string{"rack": racks[rng.IntN(3)]}
			}
			m.Seq++
			v.PutMachine(m)
		case 4: // a finished task is resubmitted
			for _, task := range v.Tasks() {
				if task.State.Terminal() {
					nt, _, err := txn.Transition(v, task.Key, txn.TaskPending)
					if err == nil {
						v.PutTask(nt)
					}
					break
				}
			}
		}
		checkIndexes(t, v)
		if t.Failed() {
			t.Fatalf("indexes diverged at step %d", step)
		}
	}
	if placed < 20 || moved < 20 {
		t.Fatalf("the random walk placed %d and moved %d tasks; too few to exercise the indexes", placed, moved)
	}
	v.RemoveJob("j")
	checkIndexes(t, v)
	if len(v.Tasks()) != 0 || len(v.jobs) != 0 {
		t.Fatalf("after RemoveJob: %d tasks, %d jobs remain", len(v.Tasks()), len(v.jobs))
	}
}

func TestStateQueries(t *testing.T) {
	v := New()
	v.PutMachine(machine("a", map[string]string{"rack": "r1"}, 4000, 0))
	v.PutMachine(machine("b", map[string]string{"rack": "r2"}, 4000, 0))
	job := JobInfo{ID: "j", Scheduler: "s", Resources: txn.Resources{CPUMilli: 1000}, MaxPerMachine: 2}
	v.PutJob(job)
	for i := range 3 {
		v.PutTask(job.NewTask(uint32(i)))
	}
	tx := &txn.Transaction{Scheduler: "s", Conflict: txn.ConflictFine, Commit: txn.CommitIncremental, Claims: []txn.Claim{
		{Task: txn.TaskKey{Job: "j", Index: 0}, Machine: "a", Resources: job.Resources},
		{Task: txn.TaskKey{Job: "j", Index: 1}, Machine: "a", Resources: job.Resources},
		{Task: txn.TaskKey{Job: "j", Index: 2}, Machine: "b", Resources: job.Resources},
	}}
	d := txn.Validate(v, tx)
	if d.Accepted != 3 {
		t.Fatalf("accepted %d of 3: %+v", d.Accepted, d.Results)
	}
	txn.Apply(v, d)
	tests := []struct {
		name      string
		got, want any
	}{
		{"TasksOfJobOn a", v.TasksOfJobOn("j", "a"), uint32(2)},
		{"TasksOfJobOn b", v.TasksOfJobOn("j", "b"), uint32(1)},
		{"TasksOfJobOn unknown machine", v.TasksOfJobOn("j", "zz"), uint32(0)},
		{"TasksOfJobOn unknown job", v.TasksOfJobOn("zz", "a"), uint32(0)},
		{"domain counts", fmt.Sprint(v.JobPlacement("j").DomainCounts("rack")), "map[r1:2 r2:1]"},
		{"machines of job", v.JobPlacement("j").Machines(), 2},
		{"pending", len(v.Pending("j")), 0},
		{"free cpu on a", v.Machine("a").Free().CPUMilli, int64(2000)},
		{"label values", fmt.Sprint(v.LabelValues("rack")), "[r1 r2]"},
		{"candidates rack in (r2)", fmt.Sprint(v.Candidates([]txn.Constraint{{Key: "rack", Op: txn.OpIn, Values: []string{"r2"}}})), "[1]"},
		{"candidates rack in (r2,r1)", fmt.Sprint(v.Candidates([]txn.Constraint{{Key: "rack", Op: txn.OpIn, Values: []string{"r2", "r1", "r2"}}})), "[0 1]"},
		{"candidates none", fmt.Sprint(v.Candidates(nil)), "[0 1]"},
		{"machines", len(v.Machines()), 2},
		{"tasks in key order", fmt.Sprint(v.Tasks()[0].Key, v.Tasks()[2].Key), "j/0 j/2"},
		{"candidates unknown value", fmt.Sprint(v.Candidates([]txn.Constraint{{Key: "rack", Op: txn.OpIn, Values: []string{"r9"}}})), "[]"},
	}
	for _, tc := range tests {
		if fmt.Sprint(tc.got) != fmt.Sprint(tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	// The third task may not join the other two on a (max per machine).
	v.PutTask(job.NewTask(3))
	tx = &txn.Transaction{Scheduler: "s", Conflict: txn.ConflictFine, Commit: txn.CommitIncremental, Claims: []txn.Claim{
		{Task: txn.TaskKey{Job: "j", Index: 3}, Machine: "a", Resources: job.Resources}}}
	if r := txn.Validate(v, tx).Results[0].Reason; r != txn.ReasonMaxPerMachine {
		t.Errorf("third task on a: %v, want max_per_machine", r)
	}
	checkIndexes(t, v)
}

func TestJobsWithPendingQueueOrder(t *testing.T) {
	v := New()
	jobs := []JobInfo{
		{ID: "late-batch", Scheduler: "s", Priority: 100, SubmitTime: 30},
		{ID: "prod", Scheduler: "s", Priority: 200, SubmitTime: 50},
		{ID: "early-batch", Scheduler: "s", Priority: 100, SubmitTime: 10},
		{ID: "other-scheduler", Scheduler: "x", Priority: 300},
		{ID: "no-pending", Scheduler: "s", Priority: 300},
	}
	for _, j := range jobs {
		v.PutJob(j)
		if j.ID != "no-pending" {
			v.PutTask(j.NewTask(0))
		}
	}
	var got []string
	for _, j := range v.JobsWithPending("s") {
		got = append(got, j.ID)
	}
	if want := []string{"prod", "early-batch", "late-batch"}; !slices.Equal(got, want) {
		t.Errorf("queue = %v, want %v", got, want)
	}
}

func TestApplyProtobufChanges(t *testing.T) {
	spec := &cellv1.JobSpec{Name: "web", Scheduler: "service", Priority: 200, Count: 2, Kind: cellv1.JobKind_JOB_KIND_SERVICE,
		Task: &cellv1.TaskTemplate{
			Resources:     &cellv1.Resources{CpuMilli: 500, MemoryBytes: 1 << 20},
			Constraints:   []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: []string{"a"}}},
			SpreadKey:     "rack",
			MaxPerMachine: 1,
		}}
	pbMachine := &cellv1.Machine{Id: "m1", Labels: map[string]string{"zone": "a", "rack": "r1"}, Capacity: &cellv1.Resources{CpuMilli: 4000, MemoryBytes: 1 << 30, GpuMilli: 2000},
		Allocated: &cellv1.Resources{CpuMilli: 500, MemoryBytes: 1 << 20}, State: cellv1.MachineState_MACHINE_STATE_READY, Seq: 7}
	pbTask := func(i uint32, state cellv1.TaskState, machine string) *cellv1.Task {
		return &cellv1.Task{JobId: "job-1", Index: i, Scheduler: "service", Priority: 200, State: state, MachineId: machine, Resources: spec.Task.Resources}
	}
	// A task arrives before its job (a snapshot chunk boundary); it gets the
	// template's constraints when the job arrives.
	chunk1 := &cellv1.SnapshotResponse{Revision: 41, Machines: []*cellv1.Machine{pbMachine},
		Tasks: []*cellv1.Task{pbTask(0, cellv1.TaskState_TASK_STATE_RUNNING, "m1")}}
	chunk2 := &cellv1.SnapshotResponse{Jobs: []*cellv1.Job{{Id: "job-1", Spec: spec, State: cellv1.JobState_JOB_STATE_RUNNING, SubmitTimeUnixNano: 99}},
		Tasks: []*cellv1.Task{pbTask(1, cellv1.TaskState_TASK_STATE_PENDING, "")}, Last: true}
	v := New()
	for _, c := range []*cellv1.SnapshotResponse{chunk1, chunk2} {
		if err := v.ApplySnapshotChunk(c); err != nil {
			t.Fatal(err)
		}
	}
	if v.Revision() != 41 {
		t.Errorf("revision = %d, want 41", v.Revision())
	}
	info, ok := v.Job("job-1")
	if !ok || info.SpreadKey != "rack" || info.MaxPerMachine != 1 || info.Kind != JobService || info.SubmitTime != 99 || info.Count != 2 || info.Priority != 200 {
		t.Errorf("job = %+v", info)
	}
	for i := range uint32(2) {
		task := v.Task(txn.TaskKey{Job: "job-1", Index: i})
		if task == nil || len(task.Constraints) != 1 || task.MaxPerMachine != 1 {
			t.Errorf("task %d = %+v, want template constraints and max per machine", i, task)
		}
	}
	if m := v.Machine("m1"); m == nil || m.Seq != 7 || m.Devices() != 2 || m.Free().CPUMilli != 3500 {
		t.Errorf("machine = %+v", m)
	}
	checkIndexes(t, v)

	watch := &cellv1.WatchResponse{Revision: 42, Changes: []*cellv1.Change{
		{Object: &cellv1.Change_Task{Task: pbTask(1, cellv1.TaskState_TASK_STATE_ASSIGNED, "m1")}},
	}}
	if err := v.ApplyWatchResponse(watch); err != nil {
		t.Fatal(err)
	}
	if v.Revision() != 42 || v.TasksOfJobOn("job-1", "m1") != 2 || len(v.Pending("job-1")) != 0 {
		t.Errorf("after watch: revision %d, on m1 %d, pending %d", v.Revision(), v.TasksOfJobOn("job-1", "m1"), len(v.Pending("job-1")))
	}
	checkIndexes(t, v)

	errs := []struct {
		name string
		err  error
		want string
	}{
		{"empty change", v.ApplyChange(&cellv1.Change{}), "change.object: not set"},
		{"machine without id", v.ApplyChange(&cellv1.Change{Object: &cellv1.Change_Machine{Machine: &cellv1.Machine{}}}), "machine.id: is empty"},
		{"job without spec", v.ApplyChange(&cellv1.Change{Object: &cellv1.Change_Job{Job: &cellv1.Job{Id: "x"}}}), "job x: spec is missing"},
		{"task without job", v.ApplyChange(&cellv1.Change{Object: &cellv1.Change_Task{Task: &cellv1.Task{}}}), "task.job_id: is empty"},
		{"compacted", v.ApplyWatchResponse(&cellv1.WatchResponse{CompactRevision: 90}), "watch: revision 42 was compacted (compact_revision 90); resnapshot"},
		{"bad change in watch", v.ApplyWatchResponse(&cellv1.WatchResponse{Revision: 50, Changes: []*cellv1.Change{{}}}), "watch revision 50: changes[0]: change.object: not set"},
		{"deletion naming nothing", v.ApplyChange(&cellv1.Change{Object: &cellv1.Change_Deleted{Deleted: &cellv1.Deletion{}}}), "change.deleted: names no object"},
	}
	for _, e := range errs {
		if e.err == nil || e.err.Error() != e.want {
			t.Errorf("%s: error %v, want %q", e.name, e.err, e.want)
		}
	}
	if v.Revision() != 42 {
		t.Errorf("a failed watch response moved the revision to %d", v.Revision())
	}
	// A deleted job leaves the view with all its tasks.
	deletion := &cellv1.WatchResponse{Revision: 43, Changes: []*cellv1.Change{
		{Object: &cellv1.Change_Deleted{Deleted: &cellv1.Deletion{Object: &cellv1.Deletion_JobId{JobId: "job-1"}}}},
	}}
	if err := v.ApplyWatchResponse(deletion); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Job("job-1"); ok || v.Task(txn.TaskKey{Job: "job-1", Index: 1}) != nil || v.TasksOfJobOn("job-1", "m1") != 0 || v.Revision() != 43 {
		t.Errorf("after the deletion: job still there, or revision %d", v.Revision())
	}
	checkIndexes(t, v)
	v.Reset()
	if v.Revision() != 0 || v.NumOrdinals() != 0 || len(v.Ready()) != 0 {
		t.Errorf("reset left revision %d, %d ordinals", v.Revision(), v.NumOrdinals())
	}
}

func TestShapesCountPendingAndRunningTasks(t *testing.T) {
	v := New()
	v.PutMachine(txn.NewMachine("m", nil, txn.Resources{CPUMilli: 8000, MemoryBytes: 1 << 34, GPUMilli: 2000}))
	small := txn.Resources{CPUMilli: 1000, GPUMilli: 500}
	big := txn.Resources{CPUMilli: 2000, GPUMilli: 1000}
	for i, r := range []txn.Resources{small, big, small} {
		v.PutTask(&txn.Task{Key: txn.TaskKey{Job: "j", Index: uint32(i)}, State: txn.TaskPending, Resources: r})
	}
	done := &txn.Task{Key: txn.TaskKey{Job: "j", Index: 1}, State: txn.TaskSucceeded, Resources: big}
	v.PutTask(done)
	if got := v.Shapes(); len(got) != 1 || got[0] != (Shape{Resources: small, Tasks: 2}) {
		t.Errorf("Shapes = %+v, want two small tasks (the big one finished)", got)
	}
	v.RemoveJob("j")
	if got := v.Shapes(); len(got) != 0 {
		t.Errorf("after RemoveJob: %+v", got)
	}
}
