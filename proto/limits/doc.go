// Package limits is what the cell's API accepts: bounds on counts and
// sizes, and the syntax of names. It is the one place these are written
// down. It lives beside the .proto files because it is part of the API's
// contract, and like them it imports nothing of the project, so every
// layer (agent and schedulers included) may use it.
//
// Contract:
//   - The request validators (package apicheck, called by the store's
//     gRPC layer in cellstate) refuse every request beyond these with
//     InvalidArgument naming the field.
//   - Clients that check input before sending it (jobspec, the scheduler
//     SDK, bench load) use the same values, or tighter ones stated next to
//     their own limits, so input they pass is never refused later with a
//     less precise error.
//   - An error echoes a value only through [Quote]: at most [MaxQuoted]
//     bytes of it, so no answer grows with what was sent.
//   - Pure: constants, compiled regular expressions and small checks, no
//     I/O.
//
// # Every request field and its bound
//
// "text" is at most MaxStringLen (4096) bytes with no NUL byte; "name
// syntax" is the pattern of that name below (which bounds the length);
// enums accept their declared values only (negative and unknown values are
// refused, never wrapped); UNSPECIFIED (0) is accepted where it means a
// default. Numbers in proto3 types not listed are bounded by their type
// and harmless at any value (revisions, sequence numbers, attempts).
//
//	SubmitJobRequest.spec (JobSpec)       required; encodes to <= MaxJobSpecBytes (64 KiB)
//	  name                                JobName (1-253)
//	  tenant                              "" or TenantName (1-63)
//	  scheduler                           SchedulerName (1-63); must be registered
//	  priority                            0..MaxPriority (10,000)
//	  count                               1..MaxTasksPerJob (100,000); a gang 1..MaxAtomicClaims (10,000)
//	  retry_limit                         0..MaxRetryLimit (1,000)
//	  kind                                UNSPECIFIED, SERVICE, BATCH
//	  task (TaskTemplate)                 required
//	    command                           text, not empty
//	    args                              <= MaxArgs (1,024), each text
//	    env                               <= MaxEnv (256); names EnvName (no '=', no NUL), values text
//	    resources                         required; >= 0, something requested, <= the largest machine
//	    constraints                       <= MaxConstraints (64)
//	      key                             LabelKey (1-63)
//	      op                              IN, NOT_IN, EXISTS, DOES_NOT_EXIST
//	      values                          <= MaxConstraintValues (256), each <= 253 bytes, no NUL;
//	                                      IN/NOT_IN need one, EXISTS/DOES_NOT_EXIST none
//	    spread_key                        "" or LabelKey
//	    max_per_machine                   <= count
//	    duration_ms                       0..MaxDurationMillis (a year)
//	    health_check                      exec or http_get_url, not both
//	      exec                            1..MaxHealthExec (64) entries, each text, the first not empty
//	      http_get_url                    <= MaxURLLen (2048); absolute http/https URL with a host, no credentials
//	      interval_ms, timeout_ms         0..MaxHealthMillis (an hour)
//	      failure_threshold               0..MaxFailureThreshold (100)
//	    readiness_check                   as health_check (issue 13)
//	  update (UpdateStrategy)             optional (issue 13)
//	    max_surge, max_unavailable        a count <= MaxTasksPerJob, or a percent <= 100
//	    min_healthy_time_ms               0..MaxRolloutMillis (a day)
//	    healthy_deadline_ms               0..MaxRolloutMillis, 0 or > min_healthy_time_ms
//	PlanJobRequest.spec                   as SubmitJobRequest.spec
//	ListJobVersionsRequest.id_or_name     a UUID or JobName
//	RevertJobRequest                      id_or_name a UUID or JobName; version >= 1
//	ScaleJobRequest                       id_or_name a UUID or JobName; count 1..MaxTasksPerJob
//	TaskStateUpdate.ready                 bool (only with RUNNING)
//	GetJobRequest.id_or_name              a UUID or JobName (<= MaxIDLen)
//	GetJobRequest.include_tasks           bool
//	ListJobsRequest.scheduler             "" or SchedulerName
//	StopJobRequest.id_or_name             a UUID or JobName
//	SetJobSchedulingStatusRequest         job_id UUID; scheduler SchedulerName;
//	                                      unschedulable_reason <= 4096 bytes; first_attempt_unix_nano >= 0
//	GetTaskLogsRequest                    task TaskRef; stream UNSPECIFIED, STDOUT, STDERR;
//	                                      tail_bytes >= 0; offset >= 0
//	RegisterMachineRequest.id             MachineName (1-253)
//	  labels                              <= MaxLabels (64); keys LabelKey, values <= 253 bytes, no NUL
//	  capacity                            required; whole GPUs; <= MaxCPUMilli, MaxBytes, MaxGPUsPerMachine
//	  gpu_memory_bytes                    0..MaxBytes
//	GetMachineRequest.id, DrainMachineRequest.id   MachineName
//	DrainMachineRequest.action            a DrainAction; not with drain = true
//	  deadline_ms                         0..MaxDrainDeadlineMs (30 days); drains only
//	  ignore_batch                        bool; drains only
//	JobSpec.disruption.max_unavailable    0..count
//	SnapshotRequest.chunk_size            0..65,536 (0: default)
//	WatchRequest.progress_interval_ms     0 (default) or MinWatchProgressMillis..MaxWatchProgressMillis (10 ms..1 h)
//	WatchRequest.machine_id               "" or MachineName
//	CommitRequest.scheduler               SchedulerName; must be registered
//	  conflict_mode                       UNSPECIFIED, FINE, COARSE
//	  commit_mode                         UNSPECIFIED, INCREMENTAL, ALL_OR_NOTHING
//	  claims                              1..MaxClaimsPerCommit (100,000), of at most MaxJobsPerCommit (256) jobs;
//	                                      <= MaxAtomicClaims (10,000) if ALL_OR_NOTHING, with preemptions, or of a gang job
//	    task (TaskRef)                    job_id a UUID; index < MaxTasksPerJob
//	    machine_id                        MachineName
//	    resources                         required; >= 0; <= the largest machine
//	    devices                           <= MaxGPUsPerMachine (64); device < 64; milli 1..1000
//	  preemptions                         <= MaxAtomicClaims (10,000), each a TaskRef
//	RegisterSchedulerRequest.name         SchedulerName
//	ReportSchedulerStatsRequest.name      SchedulerName; must be registered
//	  stats                               required; busyness finite 0..1; conflict_fraction
//	                                      finite 0..MaxRatio; report_time_unix_nano >= 0
//	ReportTaskStatesRequest.machine_id    MachineName
//	  updates                             1..MaxUpdatesPerReport (1,000)
//	    task                              TaskRef
//	    state                             RUNNING, SUCCEEDED, FAILED, KILLED
//	    message                           <= MaxUpdateMessageLen (1 KiB)
//	ListMachinesRequest, ListSchedulersRequest   no fields
//	Create/UpdateTenantRequest.tenant     required; name TenantName; max_band UNSPECIFIED..PRODUCTION;
//	                                      weight 0..1,000; quota amounts 0..MaxQuota* (tenancy.go);
//	                                      max_pending_tasks 0..MaxTenantPendingTasks; no production borrow_limit
//	GetTenantRequest.name                 TenantName; ListTenantsRequest no fields
//
// The NATS heartbeats (Heartbeat, HeartbeatBatch) are checked where they
// are handled (cellstate's liveness), not here; log_address is gone
// (reserved: task logs travel over NATS request/reply, see LogsSubject).
//
// # What a revision can weigh
//
// Every revision is one WatchResponse and must fit MaxRequestBytes (64
// MiB, the server's send limit). A task change encodes to about 146 bytes
// at submit (measured) and at most about 1 KiB later (two 253-byte machine
// ids, 64 device shares, a message, times); a job change is about 200
// bytes plus its spec (at most MaxJobSpecBytes, 64 KiB).
//
//   - Submit of the largest job (the job and 100,000 tasks): measured
//     14.0 MiB, under a quarter of the limit (cellstate
//     TestHostileLargestJobFitsTheWire). MaxJobSpecBytes is what bounds it.
//   - An agent report: at most 1,000 tasks with 1 KiB messages, about 2
//     MiB, plus the jobs they change.
//   - A commit: at most 100,000 task changes and the specs of at most 256
//     placed jobs (16 MiB), typically 20-30 MiB; plus the machines it
//     touches and its victims' tasks and jobs.
//
// Not bounded below the limit by these bounds (issue 11's closing note
// says so): a revision that touches many machines carries each machine
// with its labels (up to 64 x 256 bytes each); one that changes many jobs
// (a report over 1,000 jobs, preemptions of many jobs, a drain) carries
// each job with its spec; and 100,000 task changes with GPU devices and
// long machine ids (stopping the largest job, a commit of 100,000 claims
// on 100,000 GPU machines) come to 45-100 MiB. A revision that large
// needs the watch to split it over several messages (as etcd's
// WatchResponse.fragment does) or job changes that leave out an unchanged
// spec.
package limits
