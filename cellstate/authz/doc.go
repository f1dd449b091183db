// Package authz is the cell's authorization table: for every RPC of the
// API (proto/cell/v1) and every role (admin, scheduler/X, agent/M,
// user/U), what the caller may do. It is pure: the server gathers the
// facts of a request (which scheduler it acts as, which machine it speaks
// for, the tenant of the job it touches...) and asks Decide.
//
// Contract:
//   - Table has exactly one Row per RPC of the API (a test checks it
//     against the proto descriptors, and that README.md shows the same
//     table). A method that is not in the table is refused for everyone:
//     a new RPC is closed until someone writes its row.
//   - Admin may call every RPC, unrestricted: it can issue itself any
//     credential anyway.
//   - Decide returns the Access granted (All, Own or Redacted), or a
//     *Denial: a gRPC PermissionDenied error that names the identity, the
//     method and the rule, e.g.
//     `scheduler/rogue may not Commit: acts as scheduler "batch" (rule own-scheduler)`.
//     Rule names are a closed set (Rules) and are the `reason` label of
//     omegacell_auth_denied_total.
//   - Redacted means: everything a scheduler needs to decide (resources,
//     constraints, labels, priorities, states), but jobs' task command,
//     args, env and health-check command and URL are removed (RedactJob).
//   - What the table cannot see is enforced where the state is: the store
//     refuses claims of tasks whose job names another scheduler, fences
//     each agent update by machine and attempt, and txn only lets a claim
//     preempt tasks its priority may preempt (txn.CanPreempt).
package authz
