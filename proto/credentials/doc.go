// Package credentials is how every client of a cell — the cell CLI, the
// scheduler SDK, agents, the load benchmark, tests and examples — finds,
// reads and uses a credential bundle, and how a new one is requested.
//
// Contract:
//   - A bundle is a directory holding ca.pem (the cell's CA), cert.pem (the
//     client certificate, its identity in URI SANs, see package identity)
//     and key.pem (its PKCS#8 private key, mode 0600). Write creates one:
//     the directory 0700, the key 0600.
//   - Find looks in one order: the --credentials flag, then
//     $CELL_CREDENTIALS, then ./cell-data/pki/admin when it exists (the
//     admin bundle `cell server` and `cell dev` create there). Without a
//     usable bundle its error names every file it looked for and how to
//     get one (an admin runs `cell credentials issue`).
//   - Client is how a connection is secured: mutual TLS 1.3 with a bundle,
//     verifying the server's certificate against the bundle's CA for the
//     host of the address dialled; or, only when asked, no TLS at all
//     (--insecure, logged as a warning).
//   - Request creates a key pair and a certificate signing request for an
//     identity; only the CSR travels to the cell, which signs it
//     (CredentialService.IssueCredential); the private key stays with the
//     caller.
package credentials
