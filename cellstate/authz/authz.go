package authz

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/txn"
)

// Access is what a caller is granted on a method.
type Access uint8

const (
	// None: the role may not call the method.
	None Access = iota
	// Own: only what is the caller's own (its scheduler name and jobs, its
	// machines and their tasks, its tenants' jobs); reads are filtered.
	Own
	// Redacted: everything, with jobs' command, args, env and health-check
	// command and URL removed (RedactJob).
	Redacted
	// All: everything, unredacted.
	All
)

func (a Access) String() string {
	switch a {
	case Own:
		return "own"
	case Redacted:
		return "redacted"
	case All:
		return "all"
	}
	return "none"
}

// Rule names why a request was refused. The set is closed: it is the
// `reason` label of omegacell_auth_denied_total.
type Rule string

const (
	// RuleRole: the caller's role may not call the method at all.
	RuleRole Rule = "role"
	// RuleUnknownMethod: the method has no row in the table.
	RuleUnknownMethod Rule = "unknown-method"
	// RuleOwnScheduler: scheduler/X acts only as scheduler X.
	RuleOwnScheduler Rule = "own-scheduler"
	// RuleJobScheduler: scheduler/X acts only on jobs that name X.
	RuleJobScheduler Rule = "job-scheduler"
	// RuleOwnMachine: agent/M speaks only for machine M (a fleet for its
	// machines NAME-<digits>).
	RuleOwnMachine Rule = "own-machine"
	// RuleRegistrant: a registered machine is registered again only by
	// the agent identity that registered it.
	RuleRegistrant Rule = "machine-registrant"
	// RuleTaskOnMachine: an agent reads only jobs with a task on its
	// machines.
	RuleTaskOnMachine Rule = "task-on-machine"
	// RuleTenant: user/U acts only within its tenants.
	RuleTenant Rule = "tenant"
	// RuleMaxBand: a tenant submits at most at its policy's band.
	RuleMaxBand Rule = "tenant-max-band"
)

// Rules lists every rule, for metrics that pre-create their labels.
func Rules() []Rule {
	return []Rule{RuleRole, RuleUnknownMethod, RuleOwnScheduler, RuleJobScheduler, RuleOwnMachine,
		RuleRegistrant, RuleTaskOnMachine, RuleTenant, RuleMaxBand}
}

// Facts are what the server learned about a request before deciding;
// each method's checks read the fields that concern it.
type Facts struct {
	// Scheduler is the scheduler name the request acts as.
	Scheduler string
	// Job is the job the request touches (for messages), JobScheduler the
	// scheduler it names ("" when unknown: the store decides).
	Job, JobScheduler string
	// Machine is the machine the request speaks for or reads; Registrant
	// the identity that registered it ("" when none).
	Machine, Registrant string
	// Tenant is the tenant of the job the request submits or touches.
	Tenant string
	// OnMachine: the job has a task on (or last on) a machine the caller
	// speaks for.
	OnMachine bool
	// Band is the band of a submitted job, MaxBand its tenant's limit.
	Band, MaxBand txn.Band
}

// Denial is a refusal: a PermissionDenied error naming who, what and the
// rule.
type Denial struct {
	Identity string
	Method   string
	Rule     Rule
	Detail   string
}

func (d *Denial) Error() string {
	return fmt.Sprintf("%s may not %s: %s (rule %s)", d.Identity, d.Method, d.Detail, d.Rule)
}

// GRPCStatus makes a Denial a PermissionDenied status.
func (d *Denial) GRPCStatus() *status.Status { return status.New(codes.PermissionDenied, d.Error()) }

// check returns "" when the request is allowed, else the rule it breaks
// and a detail.
type check func(id identity.Identity, f *Facts) (Rule, string)

// Grant is what one role may do on one method.
type Grant struct {
	Access Access
	// Doc says it in words, for the README's table.
	Doc   string
	check check
}

// Row is one RPC's line of the table.
type Row struct {
	Service, Method string
	Scheduler       Grant
	Agent           Grant
	User            Grant
}

// FullMethod is the gRPC name of the row's RPC.
func (r *Row) FullMethod() string { return "/cell.v1." + r.Service + "/" + r.Method }

// grant returns the row's grant for a role (admin: All).
func (r *Row) grant(role identity.Role) Grant {
	switch role {
	case identity.Admin:
		return Grant{Access: All, Doc: "all"}
	case identity.Scheduler:
		return r.Scheduler
	case identity.Agent:
		return r.Agent
	case identity.User:
		return r.User
	}
	return Grant{}
}

var byFull = func() map[string]*Row {
	m := make(map[string]*Row, len(Table))
	for i := range Table {
		m[Table[i].FullMethod()] = &Table[i]
	}
	return m
}()

// Lookup returns the row of a full gRPC method name, or nil.
func Lookup(fullMethod string) *Row { return byFull[fullMethod] }

// Gate is the coarse check made for every call before its handler runs:
// the method must have a row and the caller's role some access to it.
func Gate(fullMethod string, id identity.Identity) error {
	r := byFull[fullMethod]
	if r == nil {
		return &Denial{Identity: id.String(), Method: shortName(fullMethod), Rule: RuleUnknownMethod, Detail: "the method has no row in the authorization table"}
	}
	if r.grant(id.Role).Access == None {
		return &Denial{Identity: id.String(), Method: r.Method, Rule: RuleRole, Detail: fmt.Sprintf("no %s may call it", id.Role)}
	}
	return nil
}

// Decide is the full check of one request, given its facts.
func Decide(fullMethod string, id identity.Identity, f *Facts) (Access, error) {
	if err := Gate(fullMethod, id); err != nil {
		return None, err
	}
	r := byFull[fullMethod]
	g := r.grant(id.Role)
	if g.check != nil {
		if f == nil {
			f = &Facts{}
		}
		if rule, detail := g.check(id, f); rule != "" {
			return None, &Denial{Identity: id.String(), Method: r.Method, Rule: rule, Detail: detail}
		}
	}
	return g.Access, nil
}

func shortName(fullMethod string) string {
	if i := strings.LastIndexByte(fullMethod, '/'); i >= 0 && i+1 < len(fullMethod) {
		return clip(fullMethod[i+1:])
	}
	return clip(fullMethod)
}

// clip bounds a client-chosen value quoted in a refusal.
func clip(s string) string {
	const max = 100
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// ------------------------------------------------------------- the checks

func asItself(id identity.Identity, f *Facts) (Rule, string) {
	if f.Scheduler != id.Name {
		return RuleOwnScheduler, fmt.Sprintf("acts as scheduler %q", clip(f.Scheduler))
	}
	return "", ""
}

func asItselfForItsJob(id identity.Identity, f *Facts) (Rule, string) {
	if rule, d := asItself(id, f); rule != "" {
		return rule, d
	}
	if f.JobScheduler != "" && f.JobScheduler != id.Name {
		return RuleJobScheduler, fmt.Sprintf("job %q names scheduler %q", clip(f.Job), f.JobScheduler)
	}
	return "", ""
}

func forItsMachine(id identity.Identity, f *Facts) (Rule, string) {
	if !id.SpeaksFor(f.Machine) {
		return RuleOwnMachine, fmt.Sprintf("speaks for machine %q", clip(f.Machine))
	}
	return "", ""
}

func registersItsMachine(id identity.Identity, f *Facts) (Rule, string) {
	if rule, d := forItsMachine(id, f); rule != "" {
		return rule, d
	}
	if f.Registrant != "" && f.Registrant != id.String() {
		return RuleRegistrant, fmt.Sprintf("machine %q was registered by %s", clip(f.Machine), f.Registrant)
	}
	return "", ""
}

func jobOnItsMachine(_ identity.Identity, f *Facts) (Rule, string) {
	if !f.OnMachine {
		return RuleTaskOnMachine, fmt.Sprintf("job %q has no task on its machine", clip(f.Job))
	}
	return "", ""
}

func inItsTenant(id identity.Identity, f *Facts) (Rule, string) {
	if !id.InTenant(f.Tenant) {
		return RuleTenant, fmt.Sprintf("tenant %q is not one of its tenants %v", clip(f.Tenant), id.Tenants)
	}
	return "", ""
}

func inItsTenantAndBand(id identity.Identity, f *Facts) (Rule, string) {
	if rule, d := inItsTenant(id, f); rule != "" {
		return rule, d
	}
	if f.Band > f.MaxBand {
		return RuleMaxBand, fmt.Sprintf("band %s is above tenant %q's highest band %s", f.Band, f.Tenant, f.MaxBand)
	}
	return "", ""
}
