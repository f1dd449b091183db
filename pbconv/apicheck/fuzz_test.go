package apicheck

import (
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// Fuzz targets: each decodes its input as one request message (inputs
// that are not one are skipped), validates it, and checks that the
// validator never panics, that a refusal is a *FieldError naming a field
// with a message bounded whatever the input (values quoted short), and
// that an accepted request has the properties the store relies on,
// checked here independently of the validator's own code.

// maxMessage bounds an error message: the field path, a sentence and at
// most a few quoted values of limits.MaxQuoted bytes (escaped, up to 4x).
const maxMessage = 600 + 4*limits.MaxQuoted

func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %T is not a *FieldError: %v", err, err)
	}
	if fe.Field == "" || fe.Msg == "" {
		t.Fatalf("error without field or message: %+v", fe)
	}
	if n := len(fe.Error()); n > maxMessage {
		t.Fatalf("error message of %d bytes: %s", n, limits.Quote(fe.Error()))
	}
}

func seed[M proto.Message](f *testing.F, msgs ...M) {
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func fuzzMessage[M proto.Message](f *testing.F, alloc func() M, check func(*testing.T, M)) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m := alloc()
		if proto.Unmarshal(data, m) != nil {
			t.Skip()
		}
		check(t, m)
	})
}

func validSpec() *cellv1.JobSpec {
	return &cellv1.JobSpec{
		Name: "train", Tenant: "ml", Scheduler: "batch", Priority: 100, Count: 4, Gang: true, RetryLimit: 3,
		Task: &cellv1.TaskTemplate{
			Command: "/bin/train", Args: []string{"--epochs", "3"}, Env: map[string]string{"A": "1", "_B2": "x"},
			Resources:   &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30, GpuMilli: 1000},
			Constraints: []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: []string{"a", "b"}}, {Key: "ssd", Op: cellv1.ConstraintOp_CONSTRAINT_OP_EXISTS}},
			SpreadKey:   "rack", MaxPerMachine: 2, DurationMs: 1000,
			HealthCheck: &cellv1.HealthCheck{HttpGetUrl: "http://localhost:8080/healthz", IntervalMs: 1000, TimeoutMs: 100, FailureThreshold: 3},
		},
	}
}

func FuzzJobSpec(f *testing.F) {
	bad := validSpec()
	bad.Task.Env["A=B"] = "x"
	bad.Task.Constraints[0].Op = 257
	exec := validSpec()
	exec.Task.HealthCheck = &cellv1.HealthCheck{Exec: []string{"test", "-f", "/tmp/x\x00"}}
	seed(f, validSpec(), bad, exec, &cellv1.JobSpec{})
	fuzzMessage(f, func() *cellv1.JobSpec { return &cellv1.JobSpec{} }, func(t *testing.T, s *cellv1.JobSpec) {
		err := JobSpec(s)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if proto.Size(s) > limits.MaxJobSpecBytes {
			t.Fatalf("accepted a spec of %d bytes", proto.Size(s))
		}
		tm := s.Task
		texts := append([]string{tm.Command}, tm.Args...)
		for k, v := range tm.Env {
			if strings.ContainsAny(k, "=\x00") || k == "" {
				t.Fatalf("accepted env name %q", k)
			}
			texts = append(texts, v)
		}
		texts = append(texts, tm.GetHealthCheck().GetExec()...)
		for _, x := range texts {
			if strings.IndexByte(x, 0) >= 0 || len(x) > limits.MaxStringLen {
				t.Fatalf("accepted text %s", limits.Quote(x))
			}
		}
		if u := tm.GetHealthCheck().GetHttpGetUrl(); u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			t.Fatalf("accepted health-check URL %s", limits.Quote(u))
		}
		for _, c := range pbconv.Constraints(tm.Constraints) {
			if err := c.Validate(); err != nil || len(c.Values) > limits.MaxConstraintValues {
				t.Fatalf("accepted constraint %v: %v", c, err)
			}
		}
		if err := txn.ValidateRequest(pbconv.Resources(tm.Resources)); err != nil {
			t.Fatalf("accepted resources the model refuses: %v", err)
		}
		if tm.DurationMs > math.MaxInt64/1_000_000 || tm.GetHealthCheck().GetIntervalMs() > math.MaxInt64/1_000_000 {
			t.Fatal("accepted a duration whose nanoseconds overflow")
		}
	})
}

func validCommit() *cellv1.CommitRequest {
	return &cellv1.CommitRequest{Scheduler: "batch", DecidedAtRevision: 7, ConflictMode: cellv1.ConflictMode_CONFLICT_MODE_COARSE,
		CommitMode: cellv1.CommitMode_COMMIT_MODE_ALL_OR_NOTHING,
		Claims: []*cellv1.Claim{{Task: &cellv1.TaskRef{JobId: "5f0c1e7a-3a4b-4c7e-9d3c-2b1f0e9d8c7b", Index: 3}, MachineId: "m-1.rack_2",
			Resources: &cellv1.Resources{CpuMilli: 100, GpuMilli: 500}, Devices: []*cellv1.DeviceShare{{Device: 1, Milli: 500}}, SeenSeq: 4}},
		Preemptions: []*cellv1.TaskRef{{JobId: "5f0c1e7a-3a4b-4c7e-9d3c-2b1f0e9d8c7c"}},
	}
}

func FuzzCommit(f *testing.F) {
	bad := validCommit()
	bad.CommitMode = -1
	bad.Claims[0].MachineId = strings.Repeat("x", 300)
	seed(f, validCommit(), bad, &cellv1.CommitRequest{})
	fuzzMessage(f, func() *cellv1.CommitRequest { return &cellv1.CommitRequest{} }, func(t *testing.T, r *cellv1.CommitRequest) {
		err := Commit(r)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		tx := pbconv.Transaction(r)
		if len(tx.Claims) == 0 || len(tx.Claims) > limits.MaxClaimsPerCommit {
			t.Fatalf("accepted %d claims", len(tx.Claims))
		}
		if r.CommitMode < 0 || r.ConflictMode < 0 || r.CommitMode > 2 || r.ConflictMode > 2 {
			t.Fatalf("accepted modes %d/%d", r.CommitMode, r.ConflictMode)
		}
		for _, c := range r.Claims {
			if len(c.MachineId) > limits.MaxMachineNameLen || c.Task.Index >= limits.MaxTasksPerJob {
				t.Fatalf("accepted claim %v", c)
			}
			for _, d := range c.Devices {
				if d.Device >= limits.MaxGPUsPerMachine || d.Milli == 0 || d.Milli > txn.MilliPerGPU {
					t.Fatalf("accepted device share %v", d)
				}
			}
		}
	})
}

func FuzzRegisterMachine(f *testing.F) {
	seed(f, &cellv1.RegisterMachineRequest{Id: "m1", Labels: map[string]string{"zone": "a", "gpu.model": "H100"},
		Capacity: &cellv1.Resources{CpuMilli: 8000, MemoryBytes: 1 << 34, GpuMilli: 8000}, GpuMemoryBytes: 80 << 30},
		&cellv1.RegisterMachineRequest{Id: "m1", Labels: map[string]string{"a b": "\x00"}}, &cellv1.RegisterMachineRequest{})
	fuzzMessage(f, func() *cellv1.RegisterMachineRequest { return &cellv1.RegisterMachineRequest{} }, func(t *testing.T, r *cellv1.RegisterMachineRequest) {
		err := RegisterMachine(r)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if len(r.Labels) > limits.MaxLabels || len(r.Id) > limits.MaxMachineNameLen {
			t.Fatalf("accepted %d labels, id of %d bytes", len(r.Labels), len(r.Id))
		}
		for k, v := range r.Labels {
			if len(k) > limits.MaxLabelKeyLen || len(v) > limits.MaxLabelValueLen || strings.IndexByte(v, 0) >= 0 {
				t.Fatalf("accepted label %s=%s", limits.Quote(k), limits.Quote(v))
			}
		}
		if err := txn.ValidateCapacity(pbconv.Resources(r.Capacity)); err != nil {
			t.Fatalf("accepted a capacity the model refuses: %v", err)
		}
	})
}

func FuzzReportTaskStates(f *testing.F) {
	seed(f, &cellv1.ReportTaskStatesRequest{MachineId: "m1", Updates: []*cellv1.TaskStateUpdate{
		{Task: &cellv1.TaskRef{JobId: "5f0c1e7a-3a4b-4c7e-9d3c-2b1f0e9d8c7b", Index: 1}, Attempt: 2, State: cellv1.TaskState_TASK_STATE_FAILED, ExitCode: 3, Message: "oom"}}},
		&cellv1.ReportTaskStatesRequest{})
	fuzzMessage(f, func() *cellv1.ReportTaskStatesRequest { return &cellv1.ReportTaskStatesRequest{} }, func(t *testing.T, r *cellv1.ReportTaskStatesRequest) {
		err := ReportTaskStates(r)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if len(r.Updates) == 0 || len(r.Updates) > limits.MaxUpdatesPerReport {
			t.Fatalf("accepted %d updates", len(r.Updates))
		}
		for _, u := range r.Updates {
			switch u.State {
			case cellv1.TaskState_TASK_STATE_RUNNING, cellv1.TaskState_TASK_STATE_SUCCEEDED, cellv1.TaskState_TASK_STATE_FAILED, cellv1.TaskState_TASK_STATE_KILLED:
			default:
				t.Fatalf("accepted state %d", u.State)
			}
			if len(u.Message) > limits.MaxUpdateMessageLen {
				t.Fatalf("accepted a message of %d bytes", len(u.Message))
			}
		}
	})
}

func FuzzReportSchedulerStats(f *testing.F) {
	seed(f, &cellv1.ReportSchedulerStatsRequest{Name: "batch", Stats: &cellv1.SchedulerStats{Busyness: 0.5, ConflictFraction: 2.5, Transactions: 9}},
		&cellv1.ReportSchedulerStatsRequest{Name: "batch", Stats: &cellv1.SchedulerStats{Busyness: math.NaN(), ConflictFraction: math.Inf(1)}},
		&cellv1.ReportSchedulerStatsRequest{})
	fuzzMessage(f, func() *cellv1.ReportSchedulerStatsRequest { return &cellv1.ReportSchedulerStatsRequest{} }, func(t *testing.T, r *cellv1.ReportSchedulerStatsRequest) {
		err := ReportSchedulerStats(r)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		b, cf := r.Stats.Busyness, r.Stats.ConflictFraction
		if math.IsNaN(b) || math.IsNaN(cf) || b < 0 || b > 1 || cf < 0 || cf > limits.MaxRatio {
			t.Fatalf("accepted busyness %g, conflict fraction %g", b, cf)
		}
	})
}

func FuzzWatchAndSnapshot(f *testing.F) {
	seed(f, &cellv1.WatchRequest{StartRevision: 9, ProgressIntervalMs: 500, MachineId: "m1"},
		&cellv1.WatchRequest{ProgressIntervalMs: math.MaxInt64}, &cellv1.WatchRequest{})
	fuzzMessage(f, func() *cellv1.WatchRequest { return &cellv1.WatchRequest{} }, func(t *testing.T, r *cellv1.WatchRequest) {
		// The same bytes as a snapshot request (field 1 is chunk_size).
		var s cellv1.SnapshotRequest
		if b, err := proto.Marshal(r); err == nil && proto.Unmarshal(b, &s) == nil {
			if err := Snapshot(&s); err != nil {
				checkRefusal(t, err)
			} else if s.ChunkSize > MaxSnapshotChunk {
				t.Fatalf("accepted chunk size %d", s.ChunkSize)
			}
		}
		err := Watch(r)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if p := r.ProgressIntervalMs; p != 0 && (p < limits.MinWatchProgressMillis || p > limits.MaxWatchProgressMillis) {
			t.Fatalf("accepted progress interval %d ms", p)
		}
		if len(r.MachineId) > limits.MaxMachineNameLen {
			t.Fatalf("accepted machine id of %d bytes", len(r.MachineId))
		}
	})
}

// FuzzSmallRequests covers the validators of the remaining requests (job
// and machine lookups, scheduling status, logs, scheduler registration)
// on one input read as each of them.
func FuzzSmallRequests(f *testing.F) {
	seed(f, &cellv1.SetJobSchedulingStatusRequest{JobId: "5f0c1e7a-3a4b-4c7e-9d3c-2b1f0e9d8c7b", Scheduler: "gpu", UnschedulableReason: "no room", Attempts: 3})
	seed(f, &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "5f0c1e7a-3a4b-4c7e-9d3c-2b1f0e9d8c7b"}, Stream: 2, TailBytes: 10})
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(m proto.Message, validate func() error) {
			if proto.Unmarshal(data, m) != nil {
				return
			}
			if err := validate(); err != nil {
				checkRefusal(t, err)
			}
		}
		var st cellv1.SetJobSchedulingStatusRequest
		check(&st, func() error { return SetJobSchedulingStatus(&st) })
		var logs cellv1.GetTaskLogsRequest
		check(&logs, func() error { return GetTaskLogs(&logs) })
		var get cellv1.GetJobRequest
		check(&get, func() error { return IDOrName("id_or_name", get.IdOrName) })
		var list cellv1.ListJobsRequest
		check(&list, func() error { return ListJobs(&list) })
		var reg cellv1.RegisterSchedulerRequest
		check(&reg, func() error { return RegisterScheduler(&reg) })
		var m cellv1.GetMachineRequest
		check(&m, func() error { return MachineID("id", m.Id, false) })
	})
}
