// Package login makes and checks the web view's login tokens (issue 16).
//
// A token is made where the credential is (`cell ui`), signed with the
// credential's private key, and carries the credential's certificate, an
// expiry and a nonce. The server accepts it once, before it expires, when
// the certificate verifies against the cell's CA for client
// authentication and is not revoked; the browser then holds a session
// bound to that certificate's identity. No secret travels but the token,
// and the token proves possession of the credential's key the way the TLS
// handshake does for gRPC.
package login

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/omegacell/omegacell/proto/credentials"
)

// MaxTTL bounds a token's life: it is a link pasted into a browser, not a
// credential to keep.
const MaxTTL = 15 * time.Minute

// MaxTokenBytes bounds what the server reads of a token.
const MaxTokenBytes = 8 << 10

// domain separates these signatures from any other use of the key.
const domain = "omegacell-webview-login/v1\n"

type payload struct {
	Cert  []byte `json:"cert"`
	Exp   int64  `json:"exp"`
	Nonce string `json:"nonce"`
}

// Token makes a login token of b's credential, valid for ttl (at most
// MaxTTL) from now.
func Token(b *credentials.Bundle, ttl time.Duration, now time.Time) (string, error) {
	if b == nil || b.Leaf == nil {
		return "", errors.New("login: no credential")
	}
	if ttl <= 0 || ttl > MaxTTL {
		return "", fmt.Errorf("login: ttl %s is outside (0, %s]", ttl, MaxTTL)
	}
	signer, ok := b.Cert.PrivateKey.(crypto.Signer)
	if !ok {
		return "", errors.New("login: the credential's key cannot sign")
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	p, err := json.Marshal(payload{Cert: b.Leaf.Raw, Exp: now.Add(ttl).Unix(), Nonce: hex.EncodeToString(nonce)})
	if err != nil {
		return "", err
	}
	msg := append([]byte(domain), p...)
	var sig []byte
	switch signer.Public().(type) {
	case ed25519.PublicKey:
		sig, err = signer.Sign(rand.Reader, msg, crypto.Hash(0))
	default:
		d := sha256.Sum256(msg)
		sig, err = signer.Sign(rand.Reader, d[:], crypto.SHA256)
	}
	if err != nil {
		return "", fmt.Errorf("login: sign: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(p) + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Claim is what a checked token says.
type Claim struct {
	Cert  *x509.Certificate // verified against the cell's CA
	Nonce string
	Exp   time.Time
}

// Verify checks a token against the cell's CA: its signature by the key of
// the certificate it carries, the certificate's chain (client auth) and
// lifetime, and the token's expiry. Revocation and reuse are the caller's
// to check (Claim.Cert.SerialNumber, Claim.Nonce).
func Verify(token string, roots *x509.CertPool, now time.Time) (*Claim, error) {
	if len(token) > MaxTokenBytes {
		return nil, errors.New("token too long")
	}
	p64, s64, ok := strings.Cut(token, ".")
	if !ok {
		return nil, errors.New("malformed token")
	}
	raw, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		return nil, errors.New("malformed token")
	}
	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return nil, errors.New("malformed token")
	}
	var p payload
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, errors.New("malformed token")
	}
	cert, err := x509.ParseCertificate(p.Cert)
	if err != nil {
		return nil, fmt.Errorf("token's certificate: %w", err)
	}
	msg := append([]byte(domain), raw...)
	var alg x509.SignatureAlgorithm
	switch cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		alg = x509.ECDSAWithSHA256
	case *rsa.PublicKey:
		alg = x509.SHA256WithRSA
	case ed25519.PublicKey:
		alg = x509.PureEd25519
	default:
		return nil, errors.New("token's certificate has an unsupported key")
	}
	if err := cert.CheckSignature(alg, msg, sig); err != nil {
		return nil, errors.New("token's signature does not verify")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("token's certificate is not a credential of this cell: %w", err)
	}
	exp := time.Unix(p.Exp, 0)
	if !now.Before(exp) {
		return nil, errors.New("token expired: run `cell ui` again")
	}
	if exp.Sub(now) > MaxTTL+time.Minute {
		return nil, errors.New("token lives longer than allowed")
	}
	if len(p.Nonce) != 32 {
		return nil, errors.New("malformed token")
	}
	return &Claim{Cert: cert, Nonce: p.Nonce, Exp: exp}, nil
}
