package cellserver

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/pki"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

// setUpPKI finds or creates the cell's CA, server certificate and admin
// bundle in <data>/pki, and opens the revocation list.
func (s *Server) setUpPKI(c Config) error {
	sans := append([]string(nil), c.TLSSANs...)
	for _, addr := range []string{c.Listen, c.NATSListen} {
		if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
			sans = append(sans, host)
		}
	}
	cell, err := pki.Ensure(filepath.Join(c.DataDir, "pki"), sans, s.log)
	if err != nil {
		return err
	}
	s.pki = cell
	s.revoked, err = cellstate.OpenRevocations(s.store)
	return err
}

// serverTLS is the TLS 1.3 configuration of the gRPC and NATS listeners:
// the server's certificate and client certificates of the cell's CA.
//   - gRPC requires one. A revoked one is refused by cellstate's
//     interceptor on every call, a new connection's first call included,
//     with Unauthenticated naming the credential: refusing it in the
//     handshake would only tell the client "bad certificate" or "broken
//     pipe".
//   - NATS asks for one (the server's own connection authenticates with a
//     password, see natsauth.go) and refuses a revoked one in the
//     handshake; natsAuth checks again.
func (s *Server) serverTLS(forGRPC bool) *tls.Config {
	c := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{s.pki.Server},
		ClientCAs:    s.pki.CA.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	if !forGRPC {
		c.ClientAuth = tls.VerifyClientCertIfGiven
		c.VerifyConnection = s.revoked.VerifyConnection
	}
	return c
}

// caSigner lets CredentialService sign with the cell's CA.
type caSigner struct{ ca *pki.CA }

func (c caSigner) Sign(id identity.Identity, pub crypto.PublicKey, ttl time.Duration) (*x509.Certificate, []byte, error) {
	return c.ca.Issue(id, pub, ttl, time.Now())
}

func (c caSigner) CAPEM() []byte { return c.ca.CertPEM }

// Client is how a part started next to the server in this process (cell
// dev's schedulers and agents, the load benchmark, tests) connects as id:
// with a credential issued in memory by the cell's CA, or insecure when
// the server is.
func (s *Server) Client(id identity.Identity) (credentials.Client, error) {
	if s.pki == nil {
		return credentials.Client{Insecure: true}, nil
	}
	b, err := s.pki.CA.IssueBundle(id, 0)
	if err != nil {
		return credentials.Client{}, err
	}
	return credentials.Client{Bundle: b}, nil
}

// AdminDir is the directory of the admin bundle ("" when insecure).
func (s *Server) AdminDir() string {
	if s.pki == nil {
		return ""
	}
	return s.pki.AdminDir
}

// CA is the cell's certificate authority (nil when insecure).
func (s *Server) CA() *pki.CA {
	if s.pki == nil {
		return nil
	}
	return s.pki.CA
}

// signer is the CA CredentialService signs with (nil when insecure).
func (s *Server) signer() cellstate.Signer {
	if s.pki == nil {
		return nil
	}
	return caSigner{s.pki.CA}
}

// grpcCreds are the gRPC server's transport credentials: mutual TLS, or
// none when insecure.
func (s *Server) grpcCreds() []grpc.ServerOption {
	if s.pki == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(grpccreds.NewTLS(s.serverTLS(true)))}
}

// secureNATS configures the embedded NATS server: TLS with the server's
// certificate, and natsAuth deciding who connects with which permissions.
func (s *Server) secureNATS(o *server.Options) error {
	if s.pki == nil {
		return nil
	}
	auth, err := newNATSAuth(cellstate.DefaultSubjectPrefix, s.revoked, s.log)
	if err != nil {
		return err
	}
	s.natsAuth = auth
	o.TLSConfig = s.serverTLS(false)
	o.TLSTimeout = 5
	o.CustomClientAuthentication = auth
	return nil
}

// closeRevokedOnNATS makes a revocation also close the open NATS
// connections of the credential (the embedded NATS must be running).
func (s *Server) closeRevokedOnNATS() {
	if s.natsAuth != nil && s.natsSrv != nil {
		s.revoked.OnRevoke(disconnectRevoked(s.natsSrv, s.log))
	}
}

// natsOptions are how the server's own NATS connection authenticates to
// the embedded NATS: TLS verified against the cell's CA, and its password.
func (s *Server) natsOptions() []nats.Option {
	if s.natsAuth == nil {
		return nil
	}
	return []nats.Option{
		nats.Secure(&tls.Config{MinVersion: tls.VersionTLS13, RootCAs: s.pki.CA.Pool(), ServerName: credentials.ServerName(s.natsURL)}),
		nats.UserInfo(serverNATSUser, string(s.natsAuth.password)),
	}
}
