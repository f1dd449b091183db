// Package buildinfo says which build of omegacell is running: the version
// stamped at link time (-ldflags "-X
// github.com/omegacell/omegacell/internal/buildinfo.version=v1.2.3"), else
// what the Go toolchain recorded (the module version, or the VCS revision
// with "+dirty" for a modified tree), else "devel". The server sends it to
// every client in a response header (cellstate.VersionHeader) and `cell
// version` prints both sides.
package buildinfo
