package cellstate

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/cellstate/authz"
	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/txn"
)

// Server is the gRPC face of a Store: it validates every request (naming
// the bad field) before the store sees it.
type Server struct {
	cellv1.UnimplementedJobServiceServer
	cellv1.UnimplementedMachineServiceServer
	cellv1.UnimplementedStateServiceServer
	cellv1.UnimplementedAgentServiceServer
	cellv1.UnimplementedSchedulerServiceServer
	cellv1.UnimplementedTenantServiceServer

	store *Store
	// versionMD is the version header (version.go); nil: none.
	versionMD metadata.MD
	insecure  bool      // calls without identity act as admin (authorize.go)
	audit     *auditLog // refusals: logged, rate-limited, and counted
	liveness  *Liveness // nil: no NATS (heartbeats not tracked)
	logs      *logProxy // GetTaskLogs' way to the agents (logs.go)
	natsURL   string
	prefix    string
	hbEvery   time.Duration

	authn *authn            // identifies every caller (authn.go)
	creds *credentialServer // CredentialService (credentials.go)

	statsMu sync.Mutex
	stats   map[string]*cellv1.SchedulerStats
	claims  map[string][2]uint64 // accepted, conflicted per scheduler
}

// ServerOptions configure the gRPC server.
type ServerOptions struct {
	Liveness          *Liveness
	NATSURL           string
	SubjectPrefix     string
	HeartbeatInterval time.Duration
	// Insecure: no TLS, every caller is admin (--insecure). Otherwise
	// every call must come over TLS with a verified client certificate.
	Insecure bool
	// Revocations is the revocation list every call is checked against
	// (nil: none); Signer is the CA CredentialService issues with (nil:
	// it issues nothing).
	Revocations *Revocations
	Signer      Signer
	// Logs bound GetTaskLogs and carry it to the agents (logs.go).
	Logs LogOptions
	// Version names the server's build in a response header (version.go;
	// empty: none).
	Version string
}

// NewServer wraps a store.
func NewServer(store *Store, o ServerOptions) *Server {
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = DefaultSubjectPrefix
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = time.Second
	}
	s := &Server{
		authn: &authn{insecure: o.Insecure, revoked: o.Revocations, now: store.opts.Now, log: store.log},
		creds: &credentialServer{signer: o.Signer, revoked: o.Revocations},
		store: store, insecure: o.Insecure, audit: newAuditLog(store.log, store.m), liveness: o.Liveness, natsURL: o.NATSURL, prefix: o.SubjectPrefix, hbEvery: o.HeartbeatInterval,
		logs:  newLogProxy(o.Logs, o.SubjectPrefix),
		stats: make(map[string]*cellv1.SchedulerStats), claims: make(map[string][2]uint64),
	}
	s.authn.refused = func(ctx context.Context, fullMethod string, err error) {
		s.audit.unauthenticated(ctx, fullMethod, status.Convert(err).Message())
	}
	if o.Version != "" {
		s.versionMD = metadata.Pairs(VersionHeader, o.Version)
	}
	store.OnSchedulersExpired(s.forgetSchedulers)
	return s
}

// forgetSchedulers drops the figures of schedulers the store forgot.
func (s *Server) forgetSchedulers(names []string) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	for _, n := range names {
		delete(s.stats, n)
		delete(s.claims, n)
	}
}

// GRPCServer returns a grpc.Server with every service and reflection
// registered. Watch streams send pre-encoded log entries through a codec
// that passes bytes through, so a revision is encoded once for all
// watchers.
func (s *Server) GRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	opts = append([]grpc.ServerOption{
		// First: every other interceptor and handler sees the identity.
		grpc.ChainUnaryInterceptor(s.authn.unary),
		grpc.ChainStreamInterceptor(s.authn.stream),
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.MaxSendMsgSize(MaxRequestBytes),
		grpc.ForceServerCodecV2(rawCodec{encoding.GetCodecV2("proto")}),
	}, opts...)
	// After opts: the identity is in the context when the gate runs.
	opts = append(opts, grpc.ChainUnaryInterceptor(s.gateUnary), grpc.ChainStreamInterceptor(s.gateStream))
	if s.versionMD != nil {
		opts = append(opts, grpc.ChainUnaryInterceptor(s.versionUnary))
	}
	g := grpc.NewServer(opts...)
	cellv1.RegisterJobServiceServer(g, s)
	cellv1.RegisterMachineServiceServer(g, s)
	cellv1.RegisterStateServiceServer(g, s)
	cellv1.RegisterAgentServiceServer(g, s)
	cellv1.RegisterSchedulerServiceServer(g, s)
	cellv1.RegisterTenantServiceServer(g, s)
	cellv1.RegisterJobVersionServiceServer(g, versionServer{s: s}) // issue 13
	cellv1.RegisterCredentialServiceServer(g, s.creds)
	reflection.Register(g)
	return g
}

// rawMessage is an already-encoded protobuf message: data, then suffix
// (more fields of the same message, e.g. the cell identity; protobuf
// merges concatenated encodings), sent without copying either.
type rawMessage struct{ data, suffix []byte }

type rawCodec struct{ encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rawMessage); ok {
		if len(r.suffix) == 0 {
			return mem.BufferSlice{mem.SliceBuffer(r.data)}, nil
		}
		return mem.BufferSlice{mem.SliceBuffer(r.data), mem.SliceBuffer(r.suffix)}, nil
	}
	return c.CodecV2.Marshal(v)
}

// grpcError turns store errors into gRPC statuses.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// ------------------------------------------------------------ JobService

func (s *Server) SubmitJob(ctx context.Context, r *cellv1.SubmitJobRequest) (*cellv1.SubmitJobResponse, error) {
	spec, err := validateJobSpec(r.Spec)
	if err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, cellv1.JobService_SubmitJob_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Tenant: spec.Tenant, Band: txn.BandOf(spec.Priority), MaxBand: s.store.tenantMaxBand(spec.Tenant)}
	}); err != nil {
		return nil, err
	}
	job, rev, err := s.store.SubmitJob(ctx, spec)
	if err != nil {
		return nil, grpcError(err)
	}
	out := &cellv1.SubmitJobResponse{Job: job, Revision: rev}
	if r.WarnInfeasible {
		out.Warnings = s.store.InfeasibleWarnings(spec)
	}
	return out, nil
}

func (s *Server) GetJob(ctx context.Context, r *cellv1.GetJobRequest) (*cellv1.GetJobResponse, error) {
	if err := validateIDOrName(r.IdOrName); err != nil {
		return nil, err
	}
	out, err := s.store.GetJob(r.IdOrName, r.IncludeTasks)
	if err != nil {
		return nil, grpcError(err)
	}
	c, err := s.authorize(ctx, cellv1.JobService_GetJob_FullMethodName, func(id identity.Identity) *authz.Facts {
		f := &authz.Facts{Job: out.Job.Id, Tenant: out.Job.GetSpec().GetTenant()}
		if id.Role == identity.Agent {
			f.OnMachine = s.store.jobOnMachines(out.Job.Id, id.SpeaksFor)
		}
		return f
	})
	if err != nil {
		return nil, err
	}
	out.Job = shapeJob(out.Job, c)
	out.Cell = s.store.Identity()
	// Explaining is a pass over every machine: for people (users, admin),
	// not for agents or schedulers, which have the cell's state already.
	if r.Explain && (c.id.Role == identity.User || c.id.Role == identity.Admin) {
		if out.Explanation, err = s.store.ExplainJob(out.Job.Id); err != nil {
			return nil, grpcError(err)
		}
	}
	if s.liveness != nil {
		// Each running task's latest usage sample (issue 14: job status
		// shows used against requested).
		for _, t := range out.Tasks {
			s.liveness.fillTask(t)
		}
	}
	return out, nil
}

func (s *Server) ListJobs(ctx context.Context, r *cellv1.ListJobsRequest) (*cellv1.ListJobsResponse, error) {
	if err := validateListJobs(r); err != nil {
		return nil, err
	}
	c, err := s.authorize(ctx, cellv1.JobService_ListJobs_FullMethodName, nil)
	if err != nil {
		return nil, err
	}
	size, err := pageSize(r.PageSize)
	if err != nil {
		return nil, err
	}
	q := jobQuery{scheduler: r.Scheduler, includeFinished: r.IncludeFinished}
	after, err := decodeJobToken(r.PageToken, q)
	if err != nil {
		return nil, err
	}
	// Shaped per page: a page may hold fewer jobs than page_size, and
	// the token continues after the last job read, shown or not.
	page := s.store.listJobsPage(q, after, size, pageBytes)
	next := page.NextPageToken
	out := shapeJobList(page, c)
	out.NextPageToken = next
	return out, nil
}

func (s *Server) StopJob(ctx context.Context, r *cellv1.StopJobRequest) (*cellv1.StopJobResponse, error) {
	if err := validateIDOrName(r.IdOrName); err != nil {
		return nil, err
	}
	jf, err := s.store.jobFacts(r.IdOrName)
	if err != nil {
		return nil, grpcError(err)
	}
	c, err := s.authorize(ctx, cellv1.JobService_StopJob_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Job: jf.id, Tenant: jf.tenant}
	})
	if err != nil {
		return nil, err
	}
	job, rev, err := s.store.StopJobBy(ctx, jf.id, c.id.String()) // by id: the job authorized
	if err != nil {
		return nil, grpcError(err)
	}
	return &cellv1.StopJobResponse{Job: job, Revision: rev}, nil
}

func (s *Server) SetJobSchedulingStatus(ctx context.Context, r *cellv1.SetJobSchedulingStatusRequest) (*cellv1.SetJobSchedulingStatusResponse, error) {
	if err := validateSetJobStatus(r); err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, cellv1.JobService_SetJobSchedulingStatus_FullMethodName, func(identity.Identity) *authz.Facts {
		jf, _ := s.store.jobFacts(r.JobId) // unknown: the store answers NotFound
		return &authz.Facts{Scheduler: r.Scheduler, Job: r.JobId, JobScheduler: jf.scheduler}
	}); err != nil {
		return nil, err
	}
	rev, err := s.store.SetJobSchedulingStatus(ctx, r)
	if err != nil {
		return nil, grpcError(err)
	}
	return &cellv1.SetJobSchedulingStatusResponse{Revision: rev}, nil
}

// -------------------------------------------------------- MachineService

func (s *Server) RegisterMachine(ctx context.Context, r *cellv1.RegisterMachineRequest) (*cellv1.RegisterMachineResponse, error) {
	if err := validateRegisterMachine(r); err != nil {
		return nil, err
	}
	c, err := s.authorize(ctx, cellv1.MachineService_RegisterMachine_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Machine: r.Id, Registrant: s.store.machineRegistrant(r.Id)}
	})
	if err != nil {
		return nil, err
	}
	m, rev, err := s.store.RegisterMachineAs(ctx, r, c.registrant())
	if err != nil {
		return nil, s.storeError(err)
	}
	if s.liveness != nil {
		s.liveness.seen(r.Id, time.Now())
	}
	return &cellv1.RegisterMachineResponse{
		Machine: s.withLiveness(m), Revision: rev, NatsUrl: s.natsURL, SubjectPrefix: s.prefix,
		HeartbeatIntervalMs: s.hbEvery.Milliseconds(), Cell: s.store.Identity(),
	}, nil
}

func (s *Server) withLiveness(m *cellv1.Machine) *cellv1.Machine {
	if s.liveness != nil {
		s.liveness.fill(m)
	}
	return m
}

func (s *Server) GetMachine(ctx context.Context, r *cellv1.GetMachineRequest) (*cellv1.GetMachineResponse, error) {
	if err := validateMachineID(r.Id); err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, cellv1.MachineService_GetMachine_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Machine: r.Id}
	}); err != nil {
		return nil, err
	}
	out, err := s.store.GetMachine(r.Id)
	if err != nil {
		return nil, grpcError(err)
	}
	s.withLiveness(out.Machine)
	if s.liveness != nil {
		for _, t := range out.Tasks {
			s.liveness.fillTask(t)
		}
	}
	return out, nil
}

func (s *Server) ListMachines(ctx context.Context, r *cellv1.ListMachinesRequest) (*cellv1.ListMachinesResponse, error) {
	if _, err := s.authorize(ctx, cellv1.MachineService_ListMachines_FullMethodName, nil); err != nil {
		return nil, err
	}
	size, err := pageSize(r.PageSize)
	if err != nil {
		return nil, err
	}
	after, err := decodeMachineToken(r.PageToken)
	if err != nil {
		return nil, err
	}
	out := s.store.listMachinesPage(after, size, pageBytes)
	for _, m := range out.Machines {
		s.withLiveness(m)
	}
	return out, nil
}

func (s *Server) DrainMachine(ctx context.Context, r *cellv1.DrainMachineRequest) (*cellv1.DrainMachineResponse, error) {
	if err := validateDrainMachine(r); err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, cellv1.MachineService_DrainMachine_FullMethodName, nil); err != nil {
		return nil, err
	}
	m, rev, err := s.store.DrainMachine(ctx, r)
	if err != nil {
		return nil, grpcError(err)
	}
	return &cellv1.DrainMachineResponse{Machine: s.withLiveness(m), Revision: rev}, nil
}

// ---------------------------------------------------------- StateService

func (s *Server) Snapshot(r *cellv1.SnapshotRequest, stream grpc.ServerStreamingServer[cellv1.SnapshotResponse]) error {
	if err := validateSnapshot(r); err != nil {
		return err
	}
	size := int(r.ChunkSize)
	if size == 0 {
		size = defaultSnapshotChunk
	}
	c, err := s.authorize(stream.Context(), cellv1.StateService_Snapshot_FullMethodName, nil)
	if err != nil {
		return err
	}
	id := s.store.identity.wire
	return shapeSnapshot(s.store.Snapshot(), c).encodeChunks(size, chunkBytes, id, func(chunk []byte) error {
		return stream.SendMsg(&rawMessage{data: chunk})
	})
}

func (s *Server) Watch(r *cellv1.WatchRequest, stream grpc.ServerStreamingServer[cellv1.WatchResponse]) error {
	if err := validateWatch(r); err != nil {
		return err
	}
	c, err := s.authorize(stream.Context(), cellv1.StateService_Watch_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Machine: r.MachineId}
	})
	if err != nil {
		return err
	}
	view := viewFor(c, r.MachineId)
	progress := time.Duration(r.ProgressIntervalMs) * time.Millisecond
	if r.ProgressIntervalMs == 0 {
		progress = defaultProgressMillis * time.Millisecond
	}
	// A start ahead of the cell means the client followed another history:
	// the server was reset or restored from an older copy. Waiting would
	// leave the client's copy wrong forever; it must resnapshot.
	if head := s.store.Revision(); r.StartRevision > head {
		return status.Errorf(codes.OutOfRange, "start_revision: %d is ahead of the cell's revision %d (the cell was reset or restored): resnapshot", r.StartRevision, head)
	}
	w := &watcher{stream: stream, view: view, identity: s.store.identity}
	ctx := stream.Context()
	now := s.store.opts.Now
	// after is the newest revision this watcher has been brought up to:
	// every change of every revision <= after that concerns it was sent.
	// A progress notification says exactly that, so it carries after
	// and never the head the hub reported: revisions between after and
	// the head may still hold a change for this watcher (bug: a machine
	// watch got progress for 1404 before its change at 1204).
	after := r.StartRevision
	// The watcher gets a progress notification when nothing was sent to
	// it for `progress`, also while revisions it filters out go by.
	due := now().Add(progress)
	timer := time.NewTimer(progress)
	defer timer.Stop()
	for {
		entries, head, wait, err := s.store.hub.read(after, watchReadBatch)
		var ce *CompactedError
		switch {
		case errors.As(err, &ce):
			if err := w.send(&cellv1.WatchResponse{Revision: head, CompactRevision: ce.Compacted}); err != nil {
				return err
			}
			return status.Error(codes.OutOfRange, ce.Error())
		case errors.Is(err, errHubClosed):
			return status.Error(codes.Unavailable, err.Error())
		case err != nil:
			return grpcError(err)
		}
		for _, e := range entries {
			sent, err := w.sendEntry(e)
			if err != nil {
				return err
			}
			if sent {
				due = now().Add(progress)
			}
			after = e.rev
		}
		if t := now(); !t.Before(due) {
			if err := w.send(&cellv1.WatchResponse{Revision: after, ProgressNotify: true}); err != nil {
				return err
			}
			due = t.Add(progress)
		}
		if len(entries) > 0 {
			continue
		}
		timer.Reset(due.Sub(now()))
		select {
		case <-wait:
		case <-timer.C:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

func (s *Server) Commit(ctx context.Context, r *cellv1.CommitRequest) (*cellv1.CommitResponse, error) {
	if err := validateCommit(r); err != nil {
		return nil, err
	}
	who, err := s.authorize(ctx, cellv1.StateService_Commit_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Scheduler: r.Scheduler}
	})
	if err != nil {
		return nil, err
	}
	res, rev, err := s.store.CommitAs(ctx, pbconv.Transaction(r), who.committer())
	if err != nil {
		return nil, s.storeError(err)
	}
	d := res.Decision
	out := &cellv1.CommitResponse{Revision: rev, Accepted: uint32(d.Accepted), Results: make([]*cellv1.ClaimResult, len(d.Results))}
	accepted := &cellv1.ClaimResult{Outcome: cellv1.ClaimOutcome_CLAIM_OUTCOME_ACCEPTED}
	for i, cr := range d.Results {
		if cr.Reason == txn.ReasonOK {
			out.Results[i] = accepted
			continue
		}
		out.Results[i] = &cellv1.ClaimResult{Outcome: cellv1.ClaimOutcome(cr.Reason), Detail: cr.Detail}
	}
	for _, k := range d.Preempted {
		out.Preempted = append(out.Preempted, pbconv.TaskRef(k))
	}
	out.PreemptionErrors = d.PreemptionErrors
	s.statsMu.Lock()
	c := s.claims[r.Scheduler]
	c[0] += uint64(d.Accepted)
	c[1] += uint64(len(d.Results) - d.Accepted)
	s.claims[r.Scheduler] = c
	s.statsMu.Unlock()
	return out, nil
}

// ---------------------------------------------------------- AgentService

func (s *Server) ReportTaskStates(ctx context.Context, r *cellv1.ReportTaskStatesRequest) (*cellv1.ReportTaskStatesResponse, error) {
	if err := validateReport(r); err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, cellv1.AgentService_ReportTaskStates_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Machine: r.MachineId}
	}); err != nil {
		return nil, err
	}
	results, rev, err := s.store.ReportTaskStates(ctx, r.MachineId, r.Updates)
	if err != nil {
		return nil, grpcError(err)
	}
	return &cellv1.ReportTaskStatesResponse{Revision: rev, Results: results}, nil
}

// ------------------------------------------------------ SchedulerService

func (s *Server) RegisterScheduler(ctx context.Context, r *cellv1.RegisterSchedulerRequest) (*cellv1.RegisterSchedulerResponse, error) {
	if err := validateRegisterScheduler(r); err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, cellv1.SchedulerService_RegisterScheduler_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Scheduler: r.Name}
	}); err != nil {
		return nil, err
	}
	rev, err := s.store.RegisterScheduler(ctx, r.Name)
	if err != nil {
		return nil, grpcError(err)
	}
	return &cellv1.RegisterSchedulerResponse{Revision: rev}, nil
}

func (s *Server) ReportSchedulerStats(ctx context.Context, r *cellv1.ReportSchedulerStatsRequest) (*cellv1.ReportSchedulerStatsResponse, error) {
	if err := validateSchedulerStats(r); err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, cellv1.SchedulerService_ReportSchedulerStats_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Scheduler: r.Name}
	}); err != nil {
		return nil, err
	}
	if !s.store.touchScheduler(r.Name) {
		return nil, status.Errorf(codes.NotFound, "name: scheduler %q is not registered", r.Name)
	}
	s.statsMu.Lock()
	s.stats[r.Name] = r.Stats
	s.statsMu.Unlock()
	return &cellv1.ReportSchedulerStatsResponse{}, nil
}

func (s *Server) ListSchedulers(ctx context.Context, _ *cellv1.ListSchedulersRequest) (*cellv1.ListSchedulersResponse, error) {
	if _, err := s.authorize(ctx, cellv1.SchedulerService_ListSchedulers_FullMethodName, nil); err != nil {
		return nil, err
	}
	names, pending := s.store.Schedulers()
	out := &cellv1.ListSchedulersResponse{}
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	for _, n := range names {
		c := s.claims[n]
		out.Schedulers = append(out.Schedulers, &cellv1.SchedulerInfo{
			Name: n, Builtin: builtinSchedulers[n], Stats: s.stats[n],
			PendingTasks: uint32(pending[n]), ClaimsAccepted: c[0], ClaimsConflicted: c[1],
		})
	}
	return out, nil
}
