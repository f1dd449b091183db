package authz

import (
	"errors"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/txn"
)

// Every RPC of the API has exactly one row, and every row is an RPC.
func TestAuthzTableCoversEveryRPC(t *testing.T) {
	want := map[string]bool{}
	for _, fd := range []protoreflect.FileDescriptor{cellv1.File_cell_v1_cell_proto, cellv1.File_cell_v1_tenancy_proto, cellv1.File_cell_v1_update_proto} {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				want["/"+string(sd.FullName())+"/"+string(sd.Methods().Get(j).Name())] = true
			}
		}
	}
	seen := map[string]bool{}
	for _, r := range Table {
		full := r.FullMethod()
		if seen[full] {
			t.Errorf("%s has two rows", full)
		}
		seen[full] = true
		if !want[full] {
			t.Errorf("row %s is no RPC of cell.proto", full)
		}
	}
	for m := range want {
		if !seen[m] {
			t.Errorf("RPC %s has no row in the authorization table: the gate refuses it to everyone: add its row", m)
		}
	}
}

// README.md shows the table the code enforces.
func TestAuthzREADMEShowsTheTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), Markdown()) {
		t.Errorf("README.md's authorization table differs from the code's; paste this:\n%s", Markdown())
	}
}

func id(t *testing.T, role identity.Role, name string, tenants ...string) identity.Identity {
	t.Helper()
	x, err := identity.New(role, name, tenants...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestAuthzDecide(t *testing.T) {
	admin := identity.Identity{Role: identity.Admin}
	batch := id(t, identity.Scheduler, "batch")
	node1 := id(t, identity.Agent, "node-1")
	fleet, _ := identity.NewFleet("sim")
	alice := id(t, identity.User, "alice", "team-a")
	m := func(svc, rpc string) string { return "/cell.v1." + svc + "/" + rpc }
	cases := []struct {
		name   string
		method string
		who    identity.Identity
		facts  Facts
		want   Access
		rule   Rule // "" when allowed
	}{
		{"admin drains", m("MachineService", "DrainMachine"), admin, Facts{}, All, ""},
		{"user drains", m("MachineService", "DrainMachine"), alice, Facts{}, None, RuleRole},
		{"scheduler commits as itself", m("StateService", "Commit"), batch, Facts{Scheduler: "batch"}, Own, ""},
		{"scheduler commits as another", m("StateService", "Commit"), batch, Facts{Scheduler: "gpu"}, None, RuleOwnScheduler},
		{"scheduler sets its job's status", m("JobService", "SetJobSchedulingStatus"), batch, Facts{Scheduler: "batch", JobScheduler: "batch"}, Own, ""},
		{"scheduler sets another's job's status", m("JobService", "SetJobSchedulingStatus"), batch, Facts{Scheduler: "batch", Job: "j", JobScheduler: "gpu"}, None, RuleJobScheduler},
		{"scheduler snapshots redacted", m("StateService", "Snapshot"), batch, Facts{}, Redacted, ""},
		{"agent registers its machine", m("MachineService", "RegisterMachine"), node1, Facts{Machine: "node-1"}, Own, ""},
		{"agent registers it again", m("MachineService", "RegisterMachine"), node1, Facts{Machine: "node-1", Registrant: "agent/node-1"}, Own, ""},
		{"agent registers another's", m("MachineService", "RegisterMachine"), node1, Facts{Machine: "node-2"}, None, RuleOwnMachine},
		{"fleet registers its machine", m("MachineService", "RegisterMachine"), fleet, Facts{Machine: "sim-0007"}, Own, ""},
		{"fleet takes over a real agent's", m("MachineService", "RegisterMachine"), fleet, Facts{Machine: "sim-1", Registrant: "agent/sim-1"}, None, RuleRegistrant},
		{"agent watches unfiltered", m("StateService", "Watch"), node1, Facts{}, Own, ""},
		{"agent watches another", m("StateService", "Watch"), node1, Facts{Machine: "node-2"}, None, RuleOwnMachine},
		{"agent reads a job it runs", m("JobService", "GetJob"), node1, Facts{OnMachine: true}, Own, ""},
		{"agent reads another job", m("JobService", "GetJob"), node1, Facts{Job: "j"}, None, RuleTaskOnMachine},
		{"agent lists machines", m("MachineService", "ListMachines"), node1, Facts{}, None, RuleRole},
		{"user submits in its tenant", m("JobService", "SubmitJob"), alice, Facts{Tenant: "team-a", Band: txn.BandBatch, MaxBand: txn.BandBatch}, Own, ""},
		{"user submits elsewhere", m("JobService", "SubmitJob"), alice, Facts{Tenant: "team-b"}, None, RuleTenant},
		{"user submits without tenant", m("JobService", "SubmitJob"), alice, Facts{}, None, RuleTenant},
		{"user submits above its band", m("JobService", "SubmitJob"), alice, Facts{Tenant: "team-a", Band: txn.BandProduction, MaxBand: txn.BandBatch}, None, RuleMaxBand},
		{"user stops elsewhere", m("JobService", "StopJob"), alice, Facts{Tenant: "team-b"}, None, RuleTenant},
		{"user lists its jobs", m("JobService", "ListJobs"), alice, Facts{}, Own, ""},
		{"user snapshots", m("StateService", "Snapshot"), alice, Facts{}, None, RuleRole},
		{"user updates a tenant", m("TenantService", "UpdateTenant"), alice, Facts{}, None, RuleRole},
		{"user creates a tenant", m("TenantService", "CreateTenant"), alice, Facts{}, None, RuleRole},
		{"user gets its tenant", m("TenantService", "GetTenant"), alice, Facts{Tenant: "team-a"}, Own, ""},
		{"user gets another tenant", m("TenantService", "GetTenant"), alice, Facts{Tenant: "team-b"}, None, RuleTenant},
		{"unknown method", "/cell.v1.JobService/Nope", admin, Facts{}, None, RuleUnknownMethod},
	}
	for _, c := range cases {
		got, err := Decide(c.method, c.who, &c.facts)
		if c.rule == "" {
			if err != nil || got != c.want {
				t.Errorf("%s: got %v %v, want %v", c.name, got, err, c.want)
			}
			continue
		}
		var d *Denial
		if !errors.As(err, &d) || d.Rule != c.rule {
			t.Errorf("%s: got %v %v, want rule %s", c.name, got, err, c.rule)
			continue
		}
		if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.HasPrefix(st.Message(), c.who.String()+" may not ") ||
			!strings.HasSuffix(st.Message(), "(rule "+string(c.rule)+")") {
			t.Errorf("%s: status %v", c.name, st)
		}
	}
	long := strings.Repeat("x", 5000)
	if _, err := Decide(m("StateService", "Commit"), batch, &Facts{Scheduler: long}); err == nil || len(err.Error()) > 300 {
		t.Errorf("a long client value is not clipped: %d bytes", len(err.Error()))
	}
}

// fill sets every scalar field of m (recursively) to a non-zero value.
func fill(m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		switch {
		case f.IsMap():
			m.Mutable(f).Map().Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString("v"))
		case f.IsList() && f.Kind() == protoreflect.MessageKind:
			fill(m.Mutable(f).List().AppendMutable().Message())
		case f.IsList() && f.Kind() == protoreflect.StringKind:
			m.Mutable(f).List().Append(protoreflect.ValueOfString("x"))
		case f.Kind() == protoreflect.MessageKind:
			fill(m.Mutable(f).Message())
		case f.Kind() == protoreflect.StringKind:
			m.Set(f, protoreflect.ValueOfString("x"))
		case f.Kind() == protoreflect.BoolKind:
			m.Set(f, protoreflect.ValueOfBool(true))
		case f.Kind() == protoreflect.EnumKind:
			m.Set(f, protoreflect.ValueOfEnum(1))
		case f.Kind() == protoreflect.Int32Kind, f.Kind() == protoreflect.Int64Kind:
			m.Set(f, protoreflect.ValueOf(intOf(f.Kind())))
		case f.Kind() == protoreflect.Uint32Kind, f.Kind() == protoreflect.Uint64Kind:
			m.Set(f, protoreflect.ValueOf(uintOf(f.Kind())))
		}
	}
}

func intOf(k protoreflect.Kind) any {
	if k == protoreflect.Int32Kind {
		return int32(7)
	}
	return int64(7)
}

func uintOf(k protoreflect.Kind) any {
	if k == protoreflect.Uint32Kind {
		return uint32(7)
	}
	return uint64(7)
}

// RedactJob removes exactly the secret-bearing fields and keeps every
// other field of Job, JobSpec, TaskTemplate and HealthCheck, including
// fields added later (this test fills them all by reflection).
func TestAuthzRedactJobKeepsEverythingElse(t *testing.T) {
	j := &cellv1.Job{}
	fill(j.ProtoReflect())
	orig := proto.Clone(j).(*cellv1.Job)
	r := RedactJob(j)
	if !proto.Equal(j, orig) {
		t.Fatal("RedactJob changed its input")
	}
	want := proto.Clone(orig).(*cellv1.Job)
	tt := want.Spec.Task
	tt.Command, tt.Args, tt.Env = "", nil, nil
	tt.HealthCheck.Exec, tt.HealthCheck.HttpGetUrl = nil, ""
	tt.ReadinessCheck.Exec, tt.ReadinessCheck.HttpGetUrl = nil, ""
	if !proto.Equal(r, want) {
		t.Errorf("redacted job:\n got %v\nwant %v", r, want)
	}
	plain := &cellv1.Job{Spec: &cellv1.JobSpec{Task: &cellv1.TaskTemplate{Resources: &cellv1.Resources{CpuMilli: 1}}}}
	if RedactJob(plain) != plain {
		t.Error("a job without secrets is copied")
	}
}
