package authz

import (
	"strings"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

var (
	none     = Grant{Access: None, Doc: "—"}
	all      = Grant{Access: All, Doc: "all"}
	redacted = Grant{Access: Redacted, Doc: "all, redacted"}
)

// Table is the authorization table: one row per RPC of the API. Admin may
// call everything (not shown). README.md's table is Markdown() of it.
var Table = []Row{
	{Service: "JobService", Method: "SubmitJob",
		Scheduler: none, Agent: none,
		User: Grant{Own, "jobs of its tenants, at most at the tenant's band (default batch)", inItsTenantAndBand}},
	{Service: "JobService", Method: "GetJob",
		Scheduler: redacted,
		Agent:     Grant{Own, "jobs with a task on its machine (a fleet: redacted)", jobOnItsMachine},
		User:      Grant{Own, "jobs of its tenants", inItsTenant}},
	{Service: "JobService", Method: "ListJobs",
		Scheduler: redacted, Agent: none,
		User: Grant{Own, "only its tenants' jobs", nil}},
	{Service: "JobService", Method: "StopJob",
		Scheduler: none, Agent: none,
		User: Grant{Own, "jobs of its tenants", inItsTenant}},
	// Issue 13: changing a running job.
	{Service: "JobVersionService", Method: "PlanJob",
		Scheduler: none, Agent: none,
		User: Grant{Own, "jobs of its tenants, at most at the tenant's band (as SubmitJob)", inItsTenantAndBand}},
	{Service: "JobVersionService", Method: "ListJobVersions",
		Scheduler: none, Agent: none,
		User: Grant{Own, "jobs of its tenants", inItsTenant}},
	{Service: "JobVersionService", Method: "RevertJob",
		Scheduler: none, Agent: none,
		User: Grant{Own, "jobs of its tenants, to a version at most at the tenant's band", inItsTenantAndBand}},
	{Service: "JobVersionService", Method: "ScaleJob",
		Scheduler: none, Agent: none,
		User: Grant{Own, "jobs of its tenants", inItsTenant}},
	{Service: "JobService", Method: "SetJobSchedulingStatus",
		Scheduler: Grant{Own, "as itself, for jobs that name it", asItselfForItsJob},
		Agent:     none, User: none},
	{Service: "JobService", Method: "GetTaskLogs",
		Scheduler: none, Agent: none,
		User: Grant{Own, "tasks of its tenants' jobs", inItsTenant}},

	{Service: "MachineService", Method: "RegisterMachine",
		Scheduler: none,
		Agent:     Grant{Own, "its machine, unless another identity registered it", registersItsMachine},
		User:      none},
	{Service: "MachineService", Method: "GetMachine",
		Scheduler: all,
		Agent:     Grant{Own, "its machine", forItsMachine},
		User:      all},
	{Service: "MachineService", Method: "ListMachines",
		Scheduler: all, Agent: none, User: all},
	{Service: "MachineService", Method: "DrainMachine",
		Scheduler: none, Agent: none, User: none},

	{Service: "StateService", Method: "Snapshot",
		Scheduler: redacted,
		Agent:     Grant{Own, "its machines, their tasks and jobs (redacted)", nil},
		User:      none},
	{Service: "StateService", Method: "Watch",
		Scheduler: redacted,
		Agent:     Grant{Own, "always filtered to its machines", forItsMachineIfNamed},
		User:      none},
	{Service: "StateService", Method: "Commit",
		Scheduler: Grant{Own, "as itself, claims of jobs that name it; preemptions as txn's precedence allows", asItself},
		Agent:     none, User: none},

	{Service: "AgentService", Method: "ReportTaskStates",
		Scheduler: none,
		Agent:     Grant{Own, "its machine; each update fenced by machine and attempt", forItsMachine},
		User:      none},

	{Service: "SchedulerService", Method: "RegisterScheduler",
		Scheduler: Grant{Own, "its own name", asItself},
		Agent:     none, User: none},
	{Service: "SchedulerService", Method: "ReportSchedulerStats",
		Scheduler: Grant{Own, "its own name", asItself},
		Agent:     none, User: none},
	{Service: "SchedulerService", Method: "ListSchedulers",
		Scheduler: all, Agent: none, User: all},

	{Service: "CredentialService", Method: "IssueCredential",
		Scheduler: none, Agent: none, User: none},
	{Service: "CredentialService", Method: "RevokeCredential",
		Scheduler: none, Agent: none, User: none},
	{Service: "CredentialService", Method: "ListRevokedCredentials",
		Scheduler: none, Agent: none, User: none},

	{Service: "TenantService", Method: "CreateTenant",
		Scheduler: none, Agent: none, User: none},
	{Service: "TenantService", Method: "UpdateTenant",
		Scheduler: none, Agent: none, User: none},
	{Service: "TenantService", Method: "GetTenant",
		Scheduler: all, Agent: none,
		User: Grant{Own, "its tenants", inItsTenant}},
	{Service: "TenantService", Method: "ListTenants",
		Scheduler: all, Agent: none,
		User: Grant{Own, "its tenants", nil}},
}

// forItsMachineIfNamed: a watch that names a machine must name the
// caller's; one that names none is filtered to the caller's machines.
func forItsMachineIfNamed(id identity.Identity, f *Facts) (Rule, string) {
	if f.Machine == "" {
		return "", ""
	}
	return forItsMachine(id, f)
}

// Markdown renders the table as README.md shows it.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| RPC | scheduler/X | agent/M | user/U |\n| --- | --- | --- | --- |\n")
	for i := range Table {
		r := &Table[i]
		b.WriteString("| `" + r.Service + "/" + r.Method + "` | " + r.Scheduler.Doc + " | " + r.Agent.Doc + " | " + r.User.Doc + " |\n")
	}
	return b.String()
}

// RedactJob returns j without what only its tenant's users may read: the
// task's command, args, env, and its health check's command and URL
// (either may embed secrets; interval, timeout and threshold stay). It
// returns j itself when there is nothing to remove, else a new Job that
// shares every other (immutable) part with j.
func RedactJob(j *cellv1.Job) *cellv1.Job {
	t := j.GetSpec().GetTask()
	hc := t.GetHealthCheck()
	rc := t.GetReadinessCheck()
	if t == nil || (t.Command == "" && len(t.Args) == 0 && len(t.Env) == 0 && len(hc.GetExec()) == 0 && hc.GetHttpGetUrl() == "" &&
		len(rc.GetExec()) == 0 && rc.GetHttpGetUrl() == "") {
		return j
	}
	s := j.Spec
	out := &cellv1.Job{
		Id: j.Id, State: j.State, SubmitTimeUnixNano: j.SubmitTimeUnixNano, FinishTimeUnixNano: j.FinishTimeUnixNano,
		UnschedulableReason: j.UnschedulableReason, Message: j.Message, ModRevision: j.ModRevision, QueuedReason: j.QueuedReason,
		Attempts: j.Attempts, FirstAttemptUnixNano: j.FirstAttemptUnixNano, PlacedUnixNano: j.PlacedUnixNano,
		Version: j.Version, Rollout: j.Rollout, TemplateVersion: j.TemplateVersion, TaskSlots: j.TaskSlots,
		Spec: &cellv1.JobSpec{
			Name: s.Name, Tenant: s.Tenant, Scheduler: s.Scheduler, Priority: s.Priority, Count: s.Count,
			Gang: s.Gang, RetryLimit: s.RetryLimit, Kind: s.Kind, Labels: s.Labels, Disruption: s.Disruption, Update: s.Update,
			Task: &cellv1.TaskTemplate{
				Resources: t.Resources, Constraints: t.Constraints, SpreadKey: t.SpreadKey,
				MaxPerMachine: t.MaxPerMachine, DurationMs: t.DurationMs,
			},
		},
	}
	if hc != nil {
		out.Spec.Task.HealthCheck = &cellv1.HealthCheck{IntervalMs: hc.IntervalMs, TimeoutMs: hc.TimeoutMs, FailureThreshold: hc.FailureThreshold}
	}
	if rc != nil {
		out.Spec.Task.ReadinessCheck = &cellv1.HealthCheck{IntervalMs: rc.IntervalMs, TimeoutMs: rc.TimeoutMs, FailureThreshold: rc.FailureThreshold}
	}
	return out
}
