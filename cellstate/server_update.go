package cellstate

import (
	"context"

	"github.com/omegacell/omegacell/cellstate/authz"
	"github.com/omegacell/omegacell/pbconv/apicheck"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/txn"
)

// versionServer serves JobVersionService (issue 13) for a Server: plan,
// list and revert versions, scale. Every call is validated (apicheck),
// then authorized with the facts of the job it touches, as SubmitJob and
// StopJob are.
type versionServer struct {
	cellv1.UnimplementedJobVersionServiceServer
	s *Server
}

func (v versionServer) PlanJob(ctx context.Context, r *cellv1.PlanJobRequest) (*cellv1.PlanJobResponse, error) {
	if err := apicheck.PlanJob(r); err != nil {
		return nil, checked(err)
	}
	spec, err := validateJobSpec(r.Spec)
	if err != nil {
		return nil, err
	}
	s := v.s
	if _, err := s.authorize(ctx, cellv1.JobVersionService_PlanJob_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Tenant: spec.Tenant, Band: txn.BandOf(spec.Priority), MaxBand: s.store.tenantMaxBand(spec.Tenant)}
	}); err != nil {
		return nil, err
	}
	return s.store.PlanJob(spec), nil
}

func (v versionServer) ListJobVersions(ctx context.Context, r *cellv1.ListJobVersionsRequest) (*cellv1.ListJobVersionsResponse, error) {
	if err := apicheck.ListJobVersions(r); err != nil {
		return nil, checked(err)
	}
	s := v.s
	jf, err := s.store.jobFacts(r.IdOrName)
	if err != nil {
		return nil, grpcError(err)
	}
	if _, err := s.authorize(ctx, cellv1.JobVersionService_ListJobVersions_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Job: jf.id, Tenant: jf.tenant}
	}); err != nil {
		return nil, err
	}
	out, err := s.store.ListJobVersions(jf.id)
	if err != nil {
		return nil, grpcError(err)
	}
	return out, nil
}

func (v versionServer) RevertJob(ctx context.Context, r *cellv1.RevertJobRequest) (*cellv1.RevertJobResponse, error) {
	if err := apicheck.RevertJob(r); err != nil {
		return nil, checked(err)
	}
	s := v.s
	jf, err := s.store.jobFacts(r.IdOrName)
	if err != nil {
		return nil, grpcError(err)
	}
	spec, err := s.store.versionSpec(jf.id, r.Version)
	if err != nil {
		return nil, grpcError(err)
	}
	if _, err := s.authorize(ctx, cellv1.JobVersionService_RevertJob_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Job: jf.id, Tenant: jf.tenant, Band: txn.BandOf(spec.Priority), MaxBand: s.store.tenantMaxBand(jf.tenant)}
	}); err != nil {
		return nil, err
	}
	job, rev, err := s.store.RevertJob(ctx, jf.id, r.Version)
	if err != nil {
		return nil, grpcError(err)
	}
	return &cellv1.RevertJobResponse{Job: job, Revision: rev}, nil
}

func (v versionServer) ScaleJob(ctx context.Context, r *cellv1.ScaleJobRequest) (*cellv1.ScaleJobResponse, error) {
	if err := apicheck.ScaleJob(r); err != nil {
		return nil, checked(err)
	}
	s := v.s
	jf, err := s.store.jobFacts(r.IdOrName)
	if err != nil {
		return nil, grpcError(err)
	}
	if _, err := s.authorize(ctx, cellv1.JobVersionService_ScaleJob_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Job: jf.id, Tenant: jf.tenant}
	}); err != nil {
		return nil, err
	}
	job, rev, err := s.store.ScaleJob(ctx, jf.id, r.Count)
	if err != nil {
		return nil, grpcError(err)
	}
	return &cellv1.ScaleJobResponse{Job: job, Revision: rev}, nil
}
