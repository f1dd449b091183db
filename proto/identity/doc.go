// Package identity is who a caller of the cell is, and how that is written
// into the credentials of the cell's own certificate authority.
//
// Contract:
//   - An Identity is one of admin, scheduler/NAME, agent/MACHINE or
//     user/NAME; a user also belongs to tenants. Names follow the API's
//     syntax (package limits): scheduler and tenant names are DNS labels,
//     user names too, machine ids are machine names.
//   - In a certificate an identity is written as URI SANs:
//     omegacell://CELL/ROLE[/NAME] for who it is (exactly one), and
//     omegacell://CELL/tenant/T for each tenant of a user. CELL is the
//     cell's id; a certificate of another cell's CA never verifies, so the
//     id is for people and logs, and Parse only checks its syntax.
//   - FromPeer reads the identity of a gRPC caller from the verified client
//     certificate of its TLS connection; it trusts the TLS layer to have
//     verified the chain against the cell's CA (and the revocation list).
//   - NewContext/FromContext carry an identity through a request's context,
//     so the server's authorization reads it once per call.
package identity
