package view

import (
	"fmt"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// JobKind is what kind of job it is; the numbering matches cell/v1's
// JobKind so conversion is a cast.
type JobKind uint8

const (
	JobKindUnspecified JobKind = 0
	JobService         JobKind = 1  // runs until stopped
	JobBatch           JobKind = 2  // finishes
	JobSystem          JobKind = 45 // one task per matching machine (issue 13)
)

func (k JobKind) String() string {
	switch k {
	case JobService:
		return "service"
	case JobBatch:
		return "batch"
	case JobSystem:
		return "system"
	}
	return "unspecified"
}

// JobState is the lifecycle state of a job; the numbering matches cell/v1's
// JobState.
type JobState uint8

const (
	JobStateUnspecified JobState = 0
	JobPending          JobState = 1
	JobRunning          JobState = 2
	JobSucceeded        JobState = 3
	JobFailed           JobState = 4
	JobStopped          JobState = 5
)

// Finished reports whether the job will place no more tasks.
func (s JobState) Finished() bool {
	return s == JobSucceeded || s == JobFailed || s == JobStopped
}

// JobInfo is the part of a job that scheduling depends on: its spec and
// submit time, with no protobuf in it, so the simulator and tests build it
// directly.
type JobInfo struct {
	ID        string
	Name      string
	Scheduler string
	// Tenant owns the job: fair share and quota are per tenant.
	Tenant   string
	Priority int32
	// Gang: all tasks are placed together or none is.
	Gang  bool
	Kind  JobKind
	State JobState
	Count uint32
	// Resources, Constraints, SpreadKey and MaxPerMachine come from the
	// task template and hold for every task of the job.
	Resources     txn.Resources
	Constraints   []txn.Constraint
	SpreadKey     string
	MaxPerMachine uint32
	// SubmitTime is in Unix nanoseconds (virtual time in the simulator).
	SubmitTime int64
}

// FromPB converts a cell/v1 job. It rejects a job with no id or no spec,
// naming the field; the rest is taken as the store validated it.
func FromPB(j *cellv1.Job) (JobInfo, error) {
	switch {
	case j == nil:
		return JobInfo{}, fmt.Errorf("job: is nil")
	case j.GetId() == "":
		return JobInfo{}, fmt.Errorf("job.id: is empty")
	case j.GetSpec() == nil:
		return JobInfo{}, fmt.Errorf("job %s: spec is missing", j.GetId())
	}
	spec := j.GetSpec()
	tmpl := spec.GetTask()
	return JobInfo{
		ID:            j.GetId(),
		Name:          spec.GetName(),
		Scheduler:     spec.GetScheduler(),
		Tenant:        spec.GetTenant(),
		Priority:      spec.GetPriority(),
		Gang:          spec.GetGang(),
		Kind:          JobKind(spec.GetKind()),
		State:         JobState(j.GetState()),
		Count:         spec.GetCount(),
		Resources:     pbconv.Resources(tmpl.GetResources()),
		Constraints:   txn.Compile(pbconv.Constraints(tmpl.GetConstraints())),
		SpreadKey:     tmpl.GetSpreadKey(),
		MaxPerMachine: tmpl.GetMaxPerMachine(),
		SubmitTime:    j.GetSubmitTimeUnixNano(),
	}, nil
}

// NewTask returns pending task number index of the job, as the store
// creates it on submission.
func (j JobInfo) NewTask(index uint32) *txn.Task {
	return &txn.Task{
		Key:           txn.TaskKey{Job: j.ID, Index: index},
		Scheduler:     j.Scheduler,
		Tenant:        j.Tenant,
		Priority:      j.Priority,
		State:         txn.TaskPending,
		Resources:     j.Resources,
		Constraints:   j.Constraints,
		MaxPerMachine: j.MaxPerMachine,
	}
}
