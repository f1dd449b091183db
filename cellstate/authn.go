package cellstate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/proto/identity"
)

// authn resolves the caller of every RPC, before any other interceptor
// or handler runs: the identity in the verified TLS client certificate,
// refused with Unauthenticated when the certificate is revoked, expired
// (a connection may outlive its certificate) or names no valid identity.
// The identity goes into the request's context (identity.NewContext) for
// authorization to read. Insecure (no TLS, --insecure) makes every caller
// admin.
type authn struct {
	insecure bool
	revoked  *Revocations // nil: none revoked
	now      func() time.Time
	log      *slog.Logger
	// refused audits a call refused here (logged rate-limited and
	// counted in omegacell_auth_denied_total, reason "unauthenticated").
	refused func(ctx context.Context, fullMethod string, err error)
}

var adminIdentity = identity.Identity{Role: identity.Admin}

func (a *authn) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	idCtx, err := a.identify(ctx)
	if err != nil {
		method := ""
		if info != nil {
			method = info.FullMethod
		}
		a.audit(ctx, method, err)
		return nil, err
	}
	return h(idCtx, req)
}

func (a *authn) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := a.identify(ss.Context())
	if err != nil {
		method := ""
		if info != nil {
			method = info.FullMethod
		}
		a.audit(ss.Context(), method, err)
		return err
	}
	return h(srv, identifiedStream{ss, ctx})
}

// identifiedStream is a server stream whose context carries the identity.
type identifiedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s identifiedStream) Context() context.Context { return s.ctx }

func (a *authn) audit(ctx context.Context, fullMethod string, err error) {
	if a.refused != nil {
		a.refused(ctx, fullMethod, err)
	}
}

func (a *authn) identify(ctx context.Context) (context.Context, error) {
	if a.insecure {
		return identity.NewContext(ctx, adminIdentity), nil
	}
	leaf, err := clientCertificate(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if err := a.check(leaf); err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return identity.NewContext(ctx, id), nil
}

// check refuses a revoked or expired certificate.
func (a *authn) check(leaf *x509.Certificate) error {
	if a.revoked.IsRevoked(leaf.SerialNumber) {
		return fmt.Errorf("credential %x (%s) is revoked", leaf.SerialNumber, clipName(leaf.Subject.CommonName))
	}
	if now := a.now(); now.After(leaf.NotAfter) {
		return fmt.Errorf("credential %x (%s) expired at %s", leaf.SerialNumber, clipName(leaf.Subject.CommonName), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// VerifyConnection is for the server's tls.Config: a revoked client
// certificate is refused in the handshake already.
func (r *Revocations) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil // no certificate: the server's ClientAuth decides
	}
	if leaf := cs.VerifiedChains[0][0]; r.IsRevoked(leaf.SerialNumber) {
		return fmt.Errorf("credential %x is revoked", leaf.SerialNumber)
	}
	return nil
}

func clientCertificate(ctx context.Context) (*x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, fmt.Errorf("no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, fmt.Errorf("the connection is not TLS: this cell requires a client certificate (or runs with --insecure)")
	}
	if len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil, fmt.Errorf("no verified client certificate")
	}
	return ti.State.VerifiedChains[0][0], nil
}

func clipName(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
