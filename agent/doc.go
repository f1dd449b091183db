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
//     nothing left here (its directory is gone) is reported FAILED as lost.
//   - Neither a server restart nor an agent restart kills tasks. An agent
//     that exits (SIGTERM, Ctrl-C, SIGKILL, a crash, an upgrade) leaves
//     its tasks running under their shims (see Task processes); the next
//     agent on the same data directory adopts them (adopt.go): it resumes
//     the attempts the server still holds here (same pid, attempt, log
//     files, usage, health checks; no report, so no failure is charged),
//     reports those that ended meanwhile with the exit code their shim
//     recorded, and stops those the server moved away (it gave up on the
//     machine after its grace period, and placed them elsewhere).
//     StopTasksOnExit (--stop-tasks-on-exit) stops every task at exit
//     instead.
//   - The agent reports only about attempts the server still holds on its
//     machine. It never needs to report KILLED: it stops a task only when
//     the server moved it on (a report would be refused by the attempt
//     fence), and an agent that stops its tasks at exit leaves the verdict
//     to the server's missed-heartbeat rule (the machine goes down and its
//     tasks return to their schedulers as lost).
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
//
// # Task processes
//
// Each attempt runs under a shim (shim.go): this very executable started
// again in a mode of its own (a package init hook, so any binary that
// links the agent can serve as one), in a session of its own, that forks
// the task and waits for it. The shim exists for two reasons:
//
//   - Exit codes across agent restarts. Only a parent can wait for a
//     process; a restarted agent is no parent of what an earlier agent
//     started. The shim is the task's parent and outlives the agent: it
//     records the leader's exit status in <attempt>/.omegacell-exit
//     (atomically, before it exits), which any later agent reads. A
//     status file written by the agent itself would be lost exactly when
//     it matters (the task ends while no agent runs). A restarted agent
//     watches an adopted shim through a pidfd (polls /proc without one),
//     and identifies it by pid and start time (/proc/PID/stat), so a
//     reused pid is never mistaken for it.
//   - No escaping processes. The shim is a child subreaper
//     (PR_SET_CHILD_SUBREAPER): every orphan of the task's tree — a
//     double-forked daemon, a `setsid` grandchild in a session of its own
//     — is re-parented to the shim, not to init, so the tree under the
//     shim is the whole task, found by parent links. Stop (SIGTERM to the
//     shim) signals every process of the tree, kill (SIGUSR1) SIGKILLs
//     it, and when the leader ends the shim kills and reaps the rest. Usage
//     without cgroups is the sum over that tree (procstat.TreeTotals),
//     including what reaped children left in cutime/cstime. With cgroup v2
//     each attempt also has its own cgroup (limits, exact usage,
//     cgroup.kill as the last resort); the shims live in a cgroup of their
//     own beside the tasks', outside their limits.
//
// The agent itself is not a subreaper. Being one would change the wait
// semantics of the whole process, and `cell dev` runs the server, the
// schedulers and the agent in one process: orphans re-parented to it would
// need reaping with wait(-1), which can steal the exit status an
// exec.Cmd.Wait elsewhere in the process expects. A subreaper per task, in
// its own process, contains the tree without touching anyone's children;
// the agent waits only for its own shims (exec.Cmd), and a shim that is
// SIGKILLed takes its task's leader along (PDEATHSIG) rather than leave it
// unsupervised. The price is one small Go process per task (a few MiB).
package agent
