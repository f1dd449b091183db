// Package webui is the cell's web view (issue 16): pages of the cell,
// its jobs, schedulers, machines and tenants, served by `cell server` at
// / on its HTTP (metrics) port, embedded in the binary (go:embed; plain
// HTML, CSS and JavaScript, nothing loaded from elsewhere).
//
// Contract:
//   - Authentication: the same credentials as the API. `cell ui` signs a
//     one-use, short-lived login token with the caller's credential
//     (package login); GET /login exchanges it for an HttpOnly,
//     SameSite=Strict session cookie bound to that identity and serial.
//     A revoked credential's session ends at once. Without a session
//     every /api answer is 401 (the static shell holds no data). An
//     insecure cell (--insecure) treats every browser as admin, as its
//     gRPC API treats every caller.
//   - Authorization: every read and action calls the API's handlers in
//     process with the browser's identity in the context, so the API's
//     table, shaping and redaction apply unchanged; the live job rows are
//     filtered with authz.Decide for GetJob (per tenant). Admin may stop
//     any job and drain machines; a user stops its tenants' jobs.
//   - Live data: one watch (Snapshot, then Watch over loopback gRPC as
//     the read-only identity scheduler/webview) feeds a copy of the cell
//     in compact rows. Both streams are read on the wire format (wire.go):
//     a task change is read in place, never decoded into a message, so
//     following a million tasks makes no garbage per task. Every open page is a client with a dirty set its
//     own goroutine flushes as server-sent events at most every 250 ms;
//     a client never holds more than maxDirty rows (then it is resent
//     everything), and a page that does not read for 30 s is cut off, so
//     a slow browser costs only its own goroutine. Heartbeat usage is not
//     in the store: it is sampled from Liveness every 2 s and sent when it
//     moved by 1% of capacity.
//   - New and Close own the watch and the sampling goroutines.
package webui
