package cellclient

// VersionHeader is the gRPC response header in which a cell server names
// its build on every unary call (issue 13): `cell version` reads it.
const VersionHeader = "omegacell-server-version"
