package cellstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/cellstate/authz"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/txn"
)

// Authorization in the server. Every call passes two checks:
//   - the gate (an interceptor, so no RPC can forget it): the caller has an
//     identity and its role may call the method at all (authz.Gate);
//   - the handler's authorize call, with the request's facts
//     (authz.Decide), whose Access then shapes what a read returns.
//
// The identity comes from the request's context (identity.NewContext, set
// by the transport's interceptor), else from the verified client
// certificate of the connection. Without either the call is refused as
// Unauthenticated, unless the server runs insecure (ServerOptions.Insecure,
// the `--insecure` opt-out), where it acts as admin.

// caller is who is calling and what it was granted.
type caller struct {
	id     identity.Identity
	access authz.Access
}

// errNoIdentity refuses calls without a credential.
var errNoIdentity = status.Error(codes.Unauthenticated, "no client identity: connect over mutual TLS with a credential of this cell (an admin issues one: cell credentials issue; see schedulers/sdk/PROTOCOL.md)")

func (s *Server) identity(ctx context.Context) (identity.Identity, error) {
	if id, ok := identity.FromContext(ctx); ok {
		return id, nil
	}
	if id, err := identity.FromPeer(ctx); err == nil {
		return id, nil
	}
	if s.insecure {
		return adminIdentity, nil
	}
	return identity.Identity{}, errNoIdentity
}

// authorize decides a request. facts may be nil (a method whose rows need
// none); it is called with the caller's identity, so facts that cost a
// lookup are gathered only for the role that needs them.
func (s *Server) authorize(ctx context.Context, fullMethod string, facts func(identity.Identity) *authz.Facts) (caller, error) {
	id, err := s.identity(ctx)
	if err != nil {
		s.audit.unauthenticated(ctx, fullMethod, "no identity in the call's context")
		return caller{}, err
	}
	var f *authz.Facts
	if facts != nil && id.Role != identity.Admin {
		f = facts(id)
	}
	access, err := authz.Decide(fullMethod, id, f)
	if err != nil {
		s.audit.denied(err)
		return caller{}, err
	}
	return caller{id: id, access: access}, nil
}

// storeError turns a store error into a gRPC status, auditing the
// refusals the store itself makes (authz.Denial).
func (s *Server) storeError(err error) error {
	var d *authz.Denial
	if errors.As(err, &d) {
		s.audit.denied(d)
		return d
	}
	return grpcError(err)
}

// gate is the coarse check of every call (see above). The reflection
// service (grpcurl's) is open to every authenticated caller.
func (s *Server) gate(ctx context.Context, fullMethod string) error {
	id, err := s.identity(ctx)
	if err != nil {
		s.audit.unauthenticated(ctx, fullMethod, "no identity in the call's context")
		return err
	}
	if strings.HasPrefix(fullMethod, "/grpc.reflection.") {
		return nil
	}
	if err := authz.Gate(fullMethod, id); err != nil {
		s.audit.denied(err)
		return err
	}
	return nil
}

func (s *Server) gateUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.gate(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) gateStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.gate(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// ------------------------------------------------------------------ audit

// auditLog logs refusals, at most a few per (identity, method) and
// interval, and counts every one in omegacell_auth_denied_total.
type auditLog struct {
	log *slog.Logger
	m   *Metrics

	mu         sync.Mutex
	limiters   map[string]*rate.Limiter
	suppressed map[string]int
}

// Audit log rate: a burst of auditBurst, then one per auditEvery, per
// (identity, method); at most auditKeys keys are remembered (then the
// memory starts over: a flood of identities cannot grow it).
const (
	auditEvery = 10 * time.Second
	auditBurst = 5
	auditKeys  = 4096
)

func newAuditLog(log *slog.Logger, m *Metrics) *auditLog {
	return &auditLog{log: log, m: m, limiters: make(map[string]*rate.Limiter), suppressed: make(map[string]int)}
}

func newAuthDenied() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omegacell_auth_denied_total",
		Help: "Calls refused by authorization, by RPC method and rule (reason); unauthenticated calls have reason unauthenticated.",
	}, []string{"method", "reason"})
}

func (a *auditLog) count(method, reason string) {
	if a.m != nil {
		a.m.authDenied.WithLabelValues(method, reason).Inc()
	}
}

// allow reports whether a refusal of key may be logged now, and how many
// were suppressed since the last one logged.
func (a *auditLog) allow(key string) (bool, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.limiters[key]
	if l == nil {
		if len(a.limiters) >= auditKeys {
			clear(a.limiters)
			clear(a.suppressed)
		}
		l = rate.NewLimiter(rate.Every(auditEvery), auditBurst)
		a.limiters[key] = l
	}
	if !l.Allow() {
		a.suppressed[key]++
		return false, 0
	}
	n := a.suppressed[key]
	delete(a.suppressed, key)
	return true, n
}

func (a *auditLog) denied(err error) {
	var d *authz.Denial
	if !errors.As(err, &d) {
		return
	}
	method := d.Method
	if d.Rule == authz.RuleUnknownMethod {
		method = "unknown" // a bounded label
	}
	a.count(method, string(d.Rule))
	if ok, suppressed := a.allow(d.Identity + " " + d.Method); ok {
		a.log.Warn("authorization refused", "identity", d.Identity, "method", d.Method, "rule", string(d.Rule),
			"detail", d.Detail, "suppressed_since_last", suppressed)
	}
}

// unauthenticated audits a call refused for its credential (none, revoked,
// expired, naming no identity); detail says which.
func (a *auditLog) unauthenticated(ctx context.Context, fullMethod, detail string) {
	method := "unknown"
	if r := authz.Lookup(fullMethod); r != nil {
		method = r.Method
	}
	a.count(method, "unauthenticated")
	addr := "unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	if ok, suppressed := a.allow("anonymous " + addr); ok {
		a.log.Warn("unauthenticated call refused", "peer", addr, "method", method, "rule", "unauthenticated",
			"detail", detail, "suppressed_since_last", suppressed)
	}
}

// --------------------------------------------------------- store's checks

// claimsOwnedBy refuses a transaction of scheduler identity by that
// claims a task whose job names another scheduler (by "": not checked).
// Preemption victims may belong to anyone: txn.Validate carries out only
// those an accepted claim's priority may preempt (txn.CanPreempt).
func (s *state) claimsOwnedBy(tx *txn.Transaction, by string) error {
	if by == "" {
		return nil
	}
	var last *jobEntry
	for i := range tx.Claims {
		k := tx.Claims[i].Task
		if last != nil && last.job.Id == k.Job {
			continue
		}
		j := s.jobs[k.Job]
		if j == nil {
			continue // unknown: txn answers TASK_UNKNOWN
		}
		last = j
		if owner := j.job.GetSpec().GetScheduler(); owner != tx.Scheduler {
			return &authz.Denial{Identity: by, Method: "Commit", Rule: authz.RuleJobScheduler,
				Detail: fmt.Sprintf("claims[%d]: job %q names scheduler %q", i, k.Job, owner)}
		}
	}
	return nil
}

// checkRegistrant refuses to register a machine that another agent
// identity registered (by "": not checked).
func checkRegistrant(old *machine, id, by string) error {
	if by == "" || old == nil || old.registeredBy == "" || old.registeredBy == by {
		return nil
	}
	return &authz.Denial{Identity: by, Method: "RegisterMachine", Rule: authz.RuleRegistrant,
		Detail: fmt.Sprintf("machine %q was registered by %s", id, old.registeredBy)}
}

// ---------------------------------------------------------- store's facts

// jobFacts are a job's owner fields, by id or name.
type jobFacts struct {
	id, tenant, scheduler string
}

func (s *Store) jobFacts(idOrName string) (jobFacts, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	j, err := s.st.lookupJob(idOrName)
	if err != nil {
		return jobFacts{}, err
	}
	spec := j.job.GetSpec()
	return jobFacts{id: j.job.Id, tenant: spec.GetTenant(), scheduler: spec.GetScheduler()}, nil
}

// jobOnMachines reports whether a task of the job is, or was last, on a
// machine that match accepts.
func (s *Store) jobOnMachines(jobID string, match func(string) bool) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	j := s.st.jobs[jobID]
	if j == nil {
		return false
	}
	for _, t := range j.tasks {
		if (t.t.Machine != "" && match(t.t.Machine)) || (t.lastMachine != "" && match(t.lastMachine)) {
			return true
		}
	}
	return false
}

// machineRegistrant is the identity that registered a machine ("" none).
func (s *Store) machineRegistrant(id string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if m := s.st.machines[id]; m != nil {
		return m.registeredBy
	}
	return ""
}
