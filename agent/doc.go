// Package agent is omegacell's node agent (`cell agent`): it makes machines
// part of a cell and runs the tasks the schedulers place on them. With
// --simulate it runs thousands of simulated machines in one process over
// the same protocol, for scale tests and benchmarks.
//
// # Protocol
//
//  1. MachineService.RegisterMachine with the machine's id, labels,
//     capacity and GPU memory. The answer names the NATS URL, the subject
//     prefix and the heartbeat interval.
//  2. Every interval a cellv1.HeartbeatBatch (protobuf) is published on
//     the agent's own subject (limits.HeartbeatSubject; a simulated fleet:
//     limits.FleetHeartbeatSubject), the only one NATS lets its credential
//     publish on: a real agent sends a batch of one; a simulated fleet
//     sends all its machines in one message (split only past 1 MiB). gRPC
//     and NATS both use the agent's credential bundle (agent/MACHINE, or a
//     fleet credential) with mutual TLS, or --insecure.
//     Every few seconds (--usage-interval) heartbeats carry usage: machine
//     CPU and memory, and per task CPU and RSS, sampled from /proc (or the
//     task's cgroup).
//  3. The agent reads its view of the cell — MachineService.GetMachine for
//     a real agent, StateService.Snapshot for a fleet — then follows
//     StateService.Watch from there (filtered to its machine for a real
//     agent; one unfiltered stream dispatched to all machines for a fleet).
//     Every answer names the cell incarnation (CellIdentity): a view or
//     watch answer from another incarnation than the registration's ends
//     the session, and the next one registers again and rereads the view.
//  4. Task state changes go back through AgentService.ReportTaskStates,
//     fenced by attempt: RUNNING when started, SUCCEEDED on exit 0, FAILED
//     with the exit code (or the health-check or start failure) otherwise.
//
// # Contract
//
//   - Level-triggered reconciliation. The agent keeps the server's view
//     (tasks assigned to or running on each machine) and its own attempts,
//     and on every change and once a second makes them agree: it starts
//     attempts the server holds here, stops attempts the server moved away
//     or replaced by a newer attempt (SIGTERM, --stop-grace, SIGKILL of the
//     whole process group), and reports states the server does not show
//     yet. A report lost to a server restart is therefore sent again.
//   - An attempt never runs twice. The attempt's directory
//     <data>/tasks/<job>/<index>.<attempt>/ is created with mkdir, which
//     fails if it exists; an attempt the server shows as running that has
//     no process here (the agent restarted) is reported FAILED as lost, and
//     processes an earlier agent left behind are killed at start.
//   - A server restart never kills tasks: the agent keeps them running,
//     registers again, reads its view again and reconciles.
//   - The agent reports only about attempts the server still holds on its
//     machine. It never needs to report KILLED: it stops a task only when
//     the server moved it on (a report would be refused by the attempt
//     fence), and when the agent itself shuts down it stops its tasks and
//     leaves the verdict to the server's missed-heartbeat rule (the machine
//     goes down and its tasks return to their schedulers as lost).
//   - Resource limits: with a writable cgroup v2 at --cgroup-root, each
//     attempt runs in its own cgroup with cpu.max and memory.max from its
//     resources; otherwise one log line says limits are not enforced.
//   - Task logs (stdout, stderr) stay on the machine. The agent listens on
//     no port: on its heartbeat NATS connection it subscribes to its own
//     machine's subject "<prefix>.logs.<machine token>" (limits.LogsSubject;
//     the token is the id with '.' escaped as '~') and answers the cell
//     server's cellv1.AgentLogsRequest with one AgentLogsReply: a page of at
//     most 64 KiB (and below the NATS max payload) that says whether more
//     follows. A simulated fleet subscribes to nothing. Finished attempts'
//     directories (logs included) are removed once older than
//     --keep-finished (24h) or beyond the newest --max-finished-attempts
//     (1000); never one the server still holds here or one a process may
//     run in (see gc.go).
//   - A silent watch is probed, not trusted: after 10 s without a message
//     the agent asks the server a cheap question on the same connection
//     and starts over if it gets no answer (a half-open connection never
//     errors by itself).
//   - Every session with the server registers the machines again, so an
//     agent learns a new NATS address after a server restart.
//   - With --metrics, Prometheus metrics of the agent itself (tasks
//     started, stopped, reported; heartbeats published) are served.
package agent
