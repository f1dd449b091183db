// Package celltest starts real parts of a cell for the tests of other
// packages: a whole cell server in the test process (the store on a temp
// dir without fsync, gRPC on loopback, an embedded NATS server on a random
// loopback port; mutual TLS as `cell server` runs by default), credentials of any identity for the test's parts
// (Credentials in memory, WriteCredentials as a bundle directory for a child
// process), and a Go binary built once for tests that run it as a child
// process.
//
// Contract: everything it starts is stopped by t.Cleanup (or by the
// returned cleanup); nothing listens beyond loopback.
package celltest
