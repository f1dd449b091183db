// Package pki is the cell's own certificate authority: created by `cell
// server` in its data directory on first start, it certifies the server
// and every client's identity (package identity's URI SANs).
//
// Contract:
//   - Ensure(<data>/pki) finds or creates ca.pem + ca-key.pem (ECDSA
//     P-256, ten years, a fresh cell id in its URI SAN), server.pem +
//     server-key.pem (TLS server certificate for loopback, localhost, the
//     host name and the --tls-san extras) and the admin bundle admin/
//     (ca.pem, cert.pem, key.pem). Keys are 0600, directories 0700. It is
//     idempotent: a restart reuses everything, renewing only a server
//     certificate that misses a name or nears its end and an admin bundle
//     that no longer loads.
//   - CA.Issue certifies a caller's public key for one identity, for a
//     bounded lifetime (default one year); the private key never reaches
//     the CA.
//   - Only crypto/x509 and crypto/tls of the standard library do the
//     cryptography.
package pki
