// Package cli holds the user-facing `cell` commands as cobra command
// constructors: JobCommand (job run, status, list, stop, logs),
// MachineCommand (machine list, drain) and SchedulerCommand (scheduler
// list). cmd/cell mounts them; each takes a Dialer to reach the cell, and
// ServerFlag provides the --server flag (default $CELL_ADDR, then
// 127.0.0.1:7070) and the credential flags (--credentials, --insecure;
// package proto/credentials finds the bundle) with a Dialer for them.
// CredentialsCommand (credentials issue, revoke, revoked) is the admin's.
//
// Contract:
//   - The commands talk to the cell only through the public gRPC API
//     (proto/cell/v1: JobService, MachineService, SchedulerService), so they
//     work against any cell server, local or remote.
//   - Every command prints a table for people by default, and with
//     -o json or -o yaml the API response message itself: protojson
//     (camelCase names, enums by name, 64-bit integers as strings), with
//     stable indentation, or the YAML form of that JSON.
//   - A failed call returns one line naming the command, the gRPC status
//     code and the server's message ("job status: NotFound: ..."); an
//     unreachable server adds a hint about --server and CELL_ADDR.
//   - Output goes to the command's Out and Err writers (cobra's SetOut and
//     SetErr), so callers and tests can capture it. `job run --wait` writes
//     its progress to Err and its outcome to Out, and returns an error when
//     the job failed or was stopped, so the process exits non-zero.
//     `job logs -f` writes the output to Out and its notes (waiting, a new
//     attempt) to Err, and returns nil when the task has ended or on
//     Ctrl-C.
//   - Tables are aligned with text/tabwriter, sorted (jobs by submission,
//     machines and schedulers by name). Times are absolute, in UTC, except
//     the ages of `job list` and of `job status`'s events (as kubectl
//     shows them), computed against the package clock that tests fix.
//
// Job specs are parsed with package jobspec, which also renders amounts
// ("500m", "512Mi") for the tables.
package cli
