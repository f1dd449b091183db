package cellstate

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/pbconv/apicheck"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// Limits on requests are package limits'; these are the store's own.
// Every request is checked by package apicheck (the validators that
// jobspec and the scheduler SDK call too) before it reaches the store.
const (
	MaxTasksPerJob        = limits.MaxTasksPerJob
	MaxRequestBytes       = limits.MaxRequestBytes
	defaultSnapshotChunk  = 4096
	maxSnapshotChunk      = apicheck.MaxSnapshotChunk
	defaultProgressMillis = 1000
	minProgressMillis     = limits.MinWatchProgressMillis
)

func invalid(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// checked answers an apicheck error as InvalidArgument (the message names
// the field).
func checked(err error) error {
	if err == nil {
		return nil
	}
	var fe *apicheck.FieldError
	if errors.As(err, &fe) {
		return status.Error(codes.InvalidArgument, fe.Error())
	}
	return status.Error(codes.InvalidArgument, err.Error())
}

// validateJobSpec checks a submitted spec and returns a normalised copy
// (the kind defaulted from the scheduler).
func validateJobSpec(in *cellv1.JobSpec) (*cellv1.JobSpec, error) {
	if err := apicheck.JobSpec(in); err != nil {
		return nil, checked(err)
	}
	spec := proto.Clone(in).(*cellv1.JobSpec)
	if spec.Kind == cellv1.JobKind_JOB_KIND_UNSPECIFIED {
		spec.Kind = cellv1.JobKind_JOB_KIND_BATCH
		if spec.Scheduler == "service" {
			spec.Kind = cellv1.JobKind_JOB_KIND_SERVICE
		}
	}
	if spec.Update != nil && spec.Kind != cellv1.JobKind_JOB_KIND_SERVICE && spec.Kind != cellv1.JobKind_JOB_KIND_SYSTEM { // issue 13
		return nil, invalid("spec.update", "only a service or a system job rolls out new versions (a batch job's new version applies to tasks not started yet)")
	}
	return spec, nil
}

func validateTaskRef(field string, r *cellv1.TaskRef) error {
	return checked(apicheck.TaskRef(field, r))
}

func validateCommit(r *cellv1.CommitRequest) error { return checked(apicheck.Commit(r)) }

func validateRegisterMachine(r *cellv1.RegisterMachineRequest) error {
	if err := apicheck.RegisterMachine(r); err != nil {
		return checked(err)
	}
	return nil
}

func validateReport(r *cellv1.ReportTaskStatesRequest) error {
	return checked(apicheck.ReportTaskStates(r))
}

func validateWatch(r *cellv1.WatchRequest) error { return checked(apicheck.Watch(r)) }

func validateSnapshot(r *cellv1.SnapshotRequest) error { return checked(apicheck.Snapshot(r)) }

func validateSchedulerStats(r *cellv1.ReportSchedulerStatsRequest) error {
	return checked(apicheck.ReportSchedulerStats(r))
}

func validateRegisterScheduler(r *cellv1.RegisterSchedulerRequest) error {
	return checked(apicheck.RegisterScheduler(r))
}

func validateIDOrName(id string) error { return checked(apicheck.IDOrName("id_or_name", id)) }

func validateMachineID(id string) error { return checked(apicheck.MachineID("id", id, false)) }

func validateListJobs(r *cellv1.ListJobsRequest) error { return checked(apicheck.ListJobs(r)) }

func validateSetJobStatus(r *cellv1.SetJobSchedulingStatusRequest) error {
	return checked(apicheck.SetJobSchedulingStatus(r))
}

func validateGetTaskLogs(r *cellv1.GetTaskLogsRequest) error {
	return checked(apicheck.GetTaskLogs(r))
}
