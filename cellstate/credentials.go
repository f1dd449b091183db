package cellstate

import (
	"context"
	"crypto"
	"crypto/x509"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// Signer is the cell's certificate authority as the credential service
// uses it (package pki implements it; cellstate does not sign).
type Signer interface {
	// Sign certifies pub for id for ttl (0: the CA's default).
	Sign(id identity.Identity, pub crypto.PublicKey, ttl time.Duration) (cert *x509.Certificate, certPEM []byte, err error)
	// CAPEM is the CA's certificate.
	CAPEM() []byte
}

// maxCSRBytes bounds a certificate signing request.
const maxCSRBytes = 16 << 10

// credentialServer is CredentialService: issuing and revoking credentials
// of the cell's CA, for admins only.
type credentialServer struct {
	cellv1.UnimplementedCredentialServiceServer
	signer  Signer
	revoked *Revocations
}

// requireAdmin refuses every caller but admin.
func requireAdmin(ctx context.Context, method string) error {
	id, ok := identity.FromContext(ctx)
	if !ok {
		return status.Errorf(codes.Unauthenticated, "%s: no identity", method)
	}
	if id.Role != identity.Admin {
		return status.Errorf(codes.PermissionDenied, "%s: %s may not; rule: credentials are admin only", method, id)
	}
	return nil
}

func (c *credentialServer) IssueCredential(ctx context.Context, r *cellv1.IssueCredentialRequest) (*cellv1.IssueCredentialResponse, error) {
	if err := requireAdmin(ctx, "IssueCredential"); err != nil {
		return nil, err
	}
	if c.signer == nil {
		return nil, status.Error(codes.FailedPrecondition, "this cell runs without its certificate authority (--insecure): it issues no credentials")
	}
	var id identity.Identity
	var err error
	if r.Fleet {
		if len(r.Tenants) > 0 || r.Role != string(identity.Agent) {
			return nil, invalid("fleet", "only an agent credential (role agent, no tenants) may be a fleet")
		}
		id, err = identity.NewFleet(r.Name)
	} else {
		id, err = identity.New(identity.Role(r.Role), r.Name, r.Tenants...)
	}
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(r.CsrDer) == 0 || len(r.CsrDer) > maxCSRBytes {
		return nil, invalid("csr_der", "%d bytes: want a PKCS#10 request of 1 to %d bytes", len(r.CsrDer), maxCSRBytes)
	}
	csr, err := x509.ParseCertificateRequest(r.CsrDer)
	if err != nil {
		return nil, invalid("csr_der", "%v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, invalid("csr_der", "not signed by its key: %v", err)
	}
	if r.TtlSeconds < 0 || r.TtlSeconds > int64(100*365*24*time.Hour/time.Second) {
		return nil, invalid("ttl_seconds", "%d is out of range", r.TtlSeconds)
	}
	cert, certPEM, err := c.signer.Sign(id, csr.PublicKey, time.Duration(r.TtlSeconds)*time.Second)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &cellv1.IssueCredentialResponse{
		CertificatePem: certPEM, CaPem: c.signer.CAPEM(), Serial: cert.SerialNumber.Text(16), NotAfterUnix: cert.NotAfter.Unix(),
	}, nil
}

func (c *credentialServer) RevokeCredential(ctx context.Context, r *cellv1.RevokeCredentialRequest) (*cellv1.RevokeCredentialResponse, error) {
	if err := requireAdmin(ctx, "RevokeCredential"); err != nil {
		return nil, err
	}
	if c.revoked == nil {
		return nil, status.Error(codes.FailedPrecondition, "this cell runs without TLS (--insecure): there are no credentials to revoke")
	}
	if len(r.Identity) > 300 {
		return nil, invalid("identity", "%d bytes, at most 300", len(r.Identity))
	}
	if !serialSyntax.MatchString(r.Serial) {
		return nil, invalid("serial", "%q: want the certificate's serial number in lower-case hex", clipName(r.Serial))
	}
	var notAfter time.Time
	if r.NotAfterUnix > 0 {
		notAfter = time.Unix(r.NotAfterUnix, 0)
	}
	ok, err := c.revoked.Revoke(r.Serial, r.Identity, notAfter)
	if err != nil {
		return nil, grpcError(err)
	}
	return &cellv1.RevokeCredentialResponse{Revoked: ok}, nil
}

func (c *credentialServer) ListRevokedCredentials(ctx context.Context, _ *cellv1.ListRevokedCredentialsRequest) (*cellv1.ListRevokedCredentialsResponse, error) {
	if err := requireAdmin(ctx, "ListRevokedCredentials"); err != nil {
		return nil, err
	}
	if c.revoked == nil {
		return &cellv1.ListRevokedCredentialsResponse{}, nil
	}
	return &cellv1.ListRevokedCredentialsResponse{Revoked: c.revoked.List()}, nil
}
