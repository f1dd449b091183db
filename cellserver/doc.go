// Package cellserver assembles a running cell server: the store
// (cellstate) on Pebble, its gRPC API, Prometheus metrics, an embedded NATS
// server on loopback (or an external NATS), and heartbeat liveness. `cell
// server`, `cell dev`, `cell bench load` and end-to-end tests all start it
// the same way.
//
// Contract: Start returns only when every part is listening; Close stops
// them in dependency order (watch streams, gRPC, metrics, liveness, NATS,
// store) and is safe to call once Start succeeded. Every goroutine Start
// creates is stopped by Close.
package cellserver
