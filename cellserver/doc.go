// Package cellserver assembles a running cell server: the store
// (cellstate) on Pebble, its gRPC API, Prometheus metrics, an embedded NATS
// server on loopback (or an external NATS), heartbeat liveness, and the
// way task logs reach agents (GetTaskLogs over its NATS connection). `cell
// server`, `cell dev`, `cell bench load` and end-to-end tests all start it
// the same way.
//
// Security: unless Config.Insecure, Start finds or creates the cell's PKI
// in DataDir/pki (package pki), serves gRPC over TLS 1.3 requiring a client
// certificate of the cell's CA (cellstate's interceptor refuses revoked
// ones on every call), and runs the embedded
// NATS with TLS and natsAuth, which maps each agent's certificate to a NATS
// user allowed only its own subjects. Client hands parts started in the
// same process (cell dev, bench load, tests) a credential of their own.
//
// Contract: Start returns only when every part is listening; Close stops
// them in dependency order (watch streams, gRPC, metrics, liveness, NATS,
// store) and is safe to call once Start succeeded. Every goroutine Start
// creates is stopped by Close.
package cellserver
