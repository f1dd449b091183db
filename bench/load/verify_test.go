package load

import (
	"strings"
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// goodCell is a consistent cell: machine m1 (4 CPU, 8 GiB) runs both tasks
// of job j1 (1 CPU, 1 GiB each); machine m2 is empty.
func goodCell() (*cellSnapshot, []expectedJob) {
	res := func() *cellv1.Resources { return &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30} }
	snap := &cellSnapshot{
		revision: 7,
		machines: []*cellv1.Machine{
			{Id: "m1", State: cellv1.MachineState_MACHINE_STATE_READY,
				Capacity:  &cellv1.Resources{CpuMilli: 4000, MemoryBytes: 8 << 30},
				Allocated: &cellv1.Resources{CpuMilli: 2000, MemoryBytes: 2 << 30}},
			{Id: "m2", State: cellv1.MachineState_MACHINE_STATE_READY,
				Capacity: &cellv1.Resources{CpuMilli: 4000, MemoryBytes: 8 << 30}, Allocated: &cellv1.Resources{}},
		},
		jobs: []*cellv1.Job{{Id: "j1", Spec: &cellv1.JobSpec{Name: "run.p.g.0", Count: 2, Task: &cellv1.TaskTemplate{Resources: res()}}}},
		tasks: []*cellv1.Task{
			{JobId: "j1", Index: 0, State: cellv1.TaskState_TASK_STATE_RUNNING, MachineId: "m1", Attempt: 1, Resources: res()},
			{JobId: "j1", Index: 1, State: cellv1.TaskState_TASK_STATE_ASSIGNED, MachineId: "m1", Attempt: 1, Resources: res()},
		},
	}
	return snap, []expectedJob{{name: "run.p.g.0", id: "j1", tasks: 2}}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(s *cellSnapshot, jobs []expectedJob) []expectedJob
		want    string // "" for a cell that passes
	}{
		{"consistent", func(s *cellSnapshot, jobs []expectedJob) []expectedJob { return jobs }, ""},
		{"succeeded counts as placed", func(s *cellSnapshot, jobs []expectedJob) []expectedJob {
			s.tasks[0].State = cellv1.TaskState_TASK_STATE_SUCCEEDED
			s.machines[0].Allocated = &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30}
			return jobs
		}, ""},
		{"overcommitted machine", func(s *cellSnapshot, jobs []expectedJob) []expectedJob {
			s.machines[0].Capacity.CpuMilli = 1500
			return jobs
		}, "exceeds capacity"},
		{"allocation differs from tasks", func(s *cellSnapshot, jobs []expectedJob) []expectedJob {
			s.machines[0].Allocated.CpuMilli = 1000
			return jobs
		}, "but its tasks hold"},
		{"task listed twice", func(s *cellSnapshot, jobs []expectedJob) []expectedJob {
			s.tasks = append(s.tasks, s.tasks[0])
			return jobs
		}, "appears twice"},
		{"task still pending", func(s *cellSnapshot, jobs []expectedJob) []expectedJob {
			s.tasks[1].State, s.tasks[1].MachineId = cellv1.TaskState_TASK_STATE_PENDING, ""
			s.machines[0].Allocated = &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30}
			return jobs
		}, "task 1 is TASK_STATE_PENDING"},
		{"task placed twice", func(s *cellSnapshot, jobs []expectedJob) []expectedJob {
			s.tasks[1].Attempt = 2
			return jobs
		}, "placed more than once"},
		{"task missing", func(s *cellSnapshot, jobs []expectedJob) []expectedJob {
			s.tasks = s.tasks[:1]
			s.machines[0].Allocated = &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30}
			return jobs
		}, "task 1 is missing"},
		{"job never seen", func(s *cellSnapshot, jobs []expectedJob) []expectedJob {
			return append(jobs, expectedJob{name: "run.p.g.1", tasks: 3})
		}, "run.p.g.1: never seen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, jobs := goodCell()
			jobs = tt.breakIt(snap, jobs)
			v := verify(snap, jobs)
			if tt.want == "" {
				if !v.OK || len(v.Problems) > 0 || v.Checked != 2 {
					t.Errorf("verify = %+v, want OK with 2 tasks checked", v)
				}
				return
			}
			if v.OK || len(v.Problems) == 0 || !strings.Contains(strings.Join(v.Problems, "\n"), tt.want) {
				t.Errorf("verify = %+v, want a problem containing %q", v, tt.want)
			}
		})
	}
}

func TestVerifyBoundsProblems(t *testing.T) {
	snap, jobs := goodCell()
	snap.tasks = nil
	snap.machines[0].Allocated = &cellv1.Resources{}
	jobs[0].tasks = 25
	v := verify(snap, jobs)
	if v.OK || len(v.Problems) != maxProblems+1 || !strings.Contains(v.Problems[maxProblems], "and 15 more") {
		t.Errorf("problems = %q, want %d and a count of the rest", v.Problems, maxProblems)
	}
}
