package cli

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
)

// fakeCell is a small in-memory implementation of the job, machine and
// scheduler services, served over real gRPC on loopback, so the commands
// are tested through the same client code, encoding and error paths they
// use against `cell server`. It checks nothing about scheduling: jobs move
// only along the scripts a test gives them.
type fakeCell struct {
	cellv1.UnimplementedJobServiceServer
	cellv1.UnimplementedMachineServiceServer
	cellv1.UnimplementedSchedulerServiceServer

	mu         sync.Mutex
	jobs       []*fakeJob
	machines   []*cellv1.Machine
	schedulers []*cellv1.SchedulerInfo
	logs       map[string][]byte // "jobID/index/stream" → data
	// scripts, by job name, say what GetJob answers on each call after a
	// SubmitJob; the last answer repeats.
	scripts map[string]func(*cellv1.Job) []*cellv1.GetJobResponse
	// unavailable makes this many GetJob calls fail as a restarting
	// server's would.
	unavailable int

	// What the commands sent.
	submitted   []*cellv1.JobSpec
	logRequests []*cellv1.GetTaskLogsRequest
	drains      []*cellv1.DrainMachineRequest
}

type fakeJob struct {
	summary *cellv1.JobSummary
	tasks   []*cellv1.Task
	script  []*cellv1.GetJobResponse
	polls   int
}

// baseTime is the fake cell's clock: job i is submitted i seconds later.
var baseTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// The tables' ages are computed against baseTime + 10 minutes.
func init() { now = func() time.Time { return baseTime.Add(10 * time.Minute) } }

func at(seconds int) int64 { return baseTime.Add(time.Duration(seconds) * time.Second).UnixNano() }

// startFakeCell serves f on 127.0.0.1:0 and returns a Dialer for it.
func startFakeCell(t *testing.T, f *fakeCell) Dialer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	cellv1.RegisterJobServiceServer(srv, f)
	cellv1.RegisterMachineServiceServer(srv, f)
	cellv1.RegisterSchedulerServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()
	return func(ctx context.Context) (*grpc.ClientConn, error) {
		return Dial(ctx, addr, credentials.Client{Insecure: true})
	}
}

// addJob adds a job with its tasks; counts are derived from the tasks.
func (f *fakeCell) addJob(job *cellv1.Job, tasks ...*cellv1.Task) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs = append(f.jobs, &fakeJob{summary: &cellv1.JobSummary{Job: job, Counts: countTasks(tasks)}, tasks: tasks})
}

func countTasks(tasks []*cellv1.Task) *cellv1.TaskCounts {
	c := &cellv1.TaskCounts{}
	for _, t := range tasks {
		switch t.GetState() {
		case cellv1.TaskState_TASK_STATE_PENDING:
			c.Pending++
		case cellv1.TaskState_TASK_STATE_ASSIGNED:
			c.Assigned++
		case cellv1.TaskState_TASK_STATE_RUNNING:
			c.Running++
			c.Ready++ // no readiness checks in the fake cell
		case cellv1.TaskState_TASK_STATE_SUCCEEDED:
			c.Succeeded++
		case cellv1.TaskState_TASK_STATE_FAILED:
			c.Failed++
		case cellv1.TaskState_TASK_STATE_LOST:
			c.Lost++
		case cellv1.TaskState_TASK_STATE_KILLED:
			c.Killed++
		}
	}
	return c
}

// find returns the job with this id or (unique, among all) name.
func (f *fakeCell) find(idOrName string) (*fakeJob, error) {
	var byName []*fakeJob
	for _, j := range f.jobs {
		if j.summary.GetJob().GetId() == idOrName {
			return j, nil
		}
		if j.summary.GetJob().GetSpec().GetName() == idOrName {
			byName = append(byName, j)
		}
	}
	switch len(byName) {
	case 0:
		return nil, status.Errorf(codes.NotFound, "job %q not found", idOrName)
	case 1:
		return byName[0], nil
	}
	return nil, status.Errorf(codes.FailedPrecondition, "%d jobs are named %q; use an id", len(byName), idOrName)
}

func (f *fakeCell) SubmitJob(_ context.Context, req *cellv1.SubmitJobRequest) (*cellv1.SubmitJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submitted = append(f.submitted, req.GetSpec())
	n := len(f.jobs) + 1
	job := &cellv1.Job{
		Id:                 fmt.Sprintf("00000000-0000-4000-8000-%012d", n),
		Spec:               req.GetSpec(),
		State:              cellv1.JobState_JOB_STATE_PENDING,
		SubmitTimeUnixNano: at(n),
	}
	fj := &fakeJob{summary: &cellv1.JobSummary{Job: job, Counts: &cellv1.TaskCounts{Pending: req.GetSpec().GetCount()}}}
	if script := f.scripts[req.GetSpec().GetName()]; script != nil {
		fj.script = script(job)
	}
	f.jobs = append(f.jobs, fj)
	return &cellv1.SubmitJobResponse{Job: job, Revision: uint64(10 + n)}, nil
}

func (f *fakeCell) GetJob(_ context.Context, req *cellv1.GetJobRequest) (*cellv1.GetJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unavailable > 0 {
		f.unavailable--
		return nil, status.Error(codes.Unavailable, "the cell server is restarting")
	}
	j, err := f.find(req.GetIdOrName())
	if err != nil {
		return nil, err
	}
	if len(j.script) > 0 {
		resp := j.script[min(j.polls, len(j.script)-1)]
		j.polls++
		return resp, nil
	}
	resp := &cellv1.GetJobResponse{Job: j.summary.GetJob(), Counts: j.summary.GetCounts(), Revision: 42}
	if req.GetIncludeTasks() {
		resp.Tasks = j.tasks
	}
	return resp, nil
}

func (f *fakeCell) ListJobs(_ context.Context, req *cellv1.ListJobsRequest) (*cellv1.ListJobsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &cellv1.ListJobsResponse{Revision: 42}
	// Newest first, so the test sees the command sort them.
	for i := len(f.jobs) - 1; i >= 0; i-- {
		s := f.jobs[i].summary
		switch s.GetJob().GetState() {
		case cellv1.JobState_JOB_STATE_SUCCEEDED, cellv1.JobState_JOB_STATE_FAILED, cellv1.JobState_JOB_STATE_STOPPED:
			if !req.GetIncludeFinished() {
				continue
			}
		}
		if req.GetScheduler() != "" && s.GetJob().GetSpec().GetScheduler() != req.GetScheduler() {
			continue
		}
		resp.Jobs = append(resp.Jobs, s)
	}
	return resp, nil
}

func (f *fakeCell) StopJob(_ context.Context, req *cellv1.StopJobRequest) (*cellv1.StopJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.find(req.GetIdOrName())
	if err != nil {
		return nil, err
	}
	job := proto.Clone(j.summary.GetJob()).(*cellv1.Job)
	job.State = cellv1.JobState_JOB_STATE_STOPPED
	job.FinishTimeUnixNano = job.GetSubmitTimeUnixNano() + int64(time.Minute)
	j.summary.Job = job
	return &cellv1.StopJobResponse{Job: job, Revision: 43}, nil
}

func logKey(ref *cellv1.TaskRef, stream cellv1.LogStream) string {
	return fmt.Sprintf("%s/%d/%s", ref.GetJobId(), ref.GetIndex(), stream)
}

func (f *fakeCell) GetTaskLogs(_ context.Context, req *cellv1.GetTaskLogsRequest) (*cellv1.GetTaskLogsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logRequests = append(f.logRequests, req)
	data, ok := f.logs[logKey(req.GetTask(), req.GetStream())]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no %s captured for task %s/%d", req.GetStream(), req.GetTask().GetJobId(), req.GetTask().GetIndex())
	}
	// The fake's logs are of finished tasks: whole, and final.
	from := int64(0)
	if req.Offset != nil {
		from = min(req.GetOffset(), int64(len(data)))
	}
	return &cellv1.GetTaskLogsResponse{Data: data[from:], Offset: from, Size: int64(len(data)), Attempt: 1,
		TaskState: cellv1.TaskState_TASK_STATE_SUCCEEDED}, nil
}

func (f *fakeCell) ListMachines(context.Context, *cellv1.ListMachinesRequest) (*cellv1.ListMachinesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &cellv1.ListMachinesResponse{Machines: f.machines, Revision: 42}, nil
}

func (f *fakeCell) DrainMachine(_ context.Context, req *cellv1.DrainMachineRequest) (*cellv1.DrainMachineResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drains = append(f.drains, req)
	for _, m := range f.machines {
		if m.GetId() == req.GetId() {
			m.State, m.Drain = cellv1.MachineState_MACHINE_STATE_DRAINING, &cellv1.MachineDrain{CordonTimeUnixNano: at(50)}
			switch req.GetAction() {
			case cellv1.DrainAction_DRAIN_ACTION_UNCORDON:
				m.State, m.Drain = cellv1.MachineState_MACHINE_STATE_READY, nil
			case cellv1.DrainAction_DRAIN_ACTION_DRAIN:
				// The fake drains at once: two tasks evicted in 4 s.
				m.Drain.Draining, m.Drain.DrainStartUnixNano, m.Drain.DoneUnixNano = true, at(50), at(54)
				m.Drain.DeadlineUnixNano, m.Drain.Evicted, m.Drain.IgnoreBatch = at(50)+req.GetDeadlineMs()*1e6, 2, req.GetIgnoreBatch()
			}
			m.Seq++
			return &cellv1.DrainMachineResponse{Machine: m, Revision: 44}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "machine %q not found", req.GetId())
}

func (f *fakeCell) GetMachine(_ context.Context, req *cellv1.GetMachineRequest) (*cellv1.GetMachineResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.machines {
		if m.GetId() != req.GetId() {
			continue
		}
		out := &cellv1.GetMachineResponse{Machine: m}
		for _, j := range f.jobs {
			for _, t := range j.tasks {
				if s := t.GetState(); t.GetMachineId() == m.GetId() && (s == cellv1.TaskState_TASK_STATE_RUNNING || s == cellv1.TaskState_TASK_STATE_ASSIGNED) {
					out.Tasks = append(out.Tasks, t)
				}
			}
		}
		return out, nil
	}
	return nil, status.Errorf(codes.NotFound, "machine %q not found", req.GetId())
}

func (f *fakeCell) ListSchedulers(context.Context, *cellv1.ListSchedulersRequest) (*cellv1.ListSchedulersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &cellv1.ListSchedulersResponse{Schedulers: f.schedulers}, nil
}
