package credentials

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"time"

	"google.golang.org/grpc"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// NewKey creates an ECDSA P-256 private key and its PKCS#8 PEM encoding.
func NewKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("credentials: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("credentials: encode key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Request asks the cell behind conn (an admin's connection) to certify a
// new key for id, and returns the new bundle in memory with the PEM of its
// three files. Only the CSR leaves this process.
func Request(ctx context.Context, conn grpc.ClientConnInterface, id identity.Identity, ttl time.Duration) (b *Bundle, caPEM, certPEM, keyPEM []byte, err error) {
	if err := id.Validate(); err != nil {
		return nil, nil, nil, nil, err
	}
	key, keyPEM, err := NewKey()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id.String()}}, key)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("credentials: certificate request: %w", err)
	}
	resp, err := cellv1.NewCredentialServiceClient(conn).IssueCredential(ctx, &cellv1.IssueCredentialRequest{
		Role: string(id.Role), Name: id.Name, Tenants: id.Tenants, Fleet: id.Fleet, CsrDer: csr, TtlSeconds: int64(ttl / time.Second),
	})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	b, err = FromPEM(resp.CaPem, resp.CertificatePem, keyPEM, time.Now())
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("credentials: the cell answered an unusable certificate: %w", err)
	}
	return b, resp.CaPem, resp.CertificatePem, keyPEM, nil
}

// Serial is how serial numbers are written: lower-case hex.
func Serial(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }
