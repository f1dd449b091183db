package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

// Lifetimes.
const (
	CALifetime = 10 * 365 * 24 * time.Hour
	// DefaultTTL is the lifetime of a credential issued without one.
	DefaultTTL = 365 * 24 * time.Hour
	// MaxTTL bounds a requested lifetime: no credential outlives the CA's
	// first decade.
	MaxTTL = 5 * 365 * 24 * time.Hour
	// renewBefore: a server certificate this close to its end is renewed
	// at start.
	renewBefore = 30 * 24 * time.Hour
	// backdate absorbs clock skew between the cell and its clients.
	backdate = 5 * time.Minute
)

// Files in <data>/pki.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
	AdminDir      = "admin"
)

// CA is the cell's certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
	// CellID is the cell's id, written in the CA's URI SAN and in every
	// identity URI it signs.
	CellID string
}

// Pool is a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue signs a client certificate for id over pub, valid from now for
// ttl (0: DefaultTTL; at most MaxTTL). It returns the certificate in DER
// and PEM.
func (ca *CA) Issue(id identity.Identity, pub crypto.PublicKey, ttl time.Duration, now time.Time) (*x509.Certificate, []byte, error) {
	if err := id.Validate(); err != nil {
		return nil, nil, err
	}
	switch {
	case ttl == 0:
		ttl = DefaultTTL
	case ttl < time.Minute || ttl > MaxTTL:
		return nil, nil, fmt.Errorf("pki: ttl %v: want between 1m and %v", ttl, MaxTTL)
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := earliest(now.Add(ttl), ca.Cert.NotAfter)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.String(), Organization: []string{"omegacell " + ca.CellID}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         id.URIs(ca.CellID),
	}
	return ca.sign(tmpl, pub)
}

// issueServer signs the server's certificate for the given DNS names and
// IP addresses. It is also a client certificate of no identity, which the
// server's own NATS connection presents.
func (ca *CA) issueServer(dns []string, ips []net.IP, pub crypto.PublicKey, now time.Time) (*x509.Certificate, []byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "omegacell cell server", Organization: []string{"omegacell " + ca.CellID}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     earliest(now.Add(DefaultTTL), ca.Cert.NotAfter),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	return ca.sign(tmpl, pub)
}

func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, []byte, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: sign: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: parse what was signed: %w", err)
	}
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// checkPublicKey accepts what the CA certifies: ECDSA P-256/P-384 and
// Ed25519 keys.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if n := k.Curve.Params().Name; n != "P-256" && n != "P-384" {
			return fmt.Errorf("pki: ECDSA curve %s: want P-256 or P-384", n)
		}
		return nil
	case ed25519.PublicKey:
		if len(k) == ed25519.PublicKeySize {
			return nil
		}
	}
	return fmt.Errorf("pki: public key of type %T: want ECDSA P-256 or Ed25519", pub)
}

// newSerial is a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// newCA creates a CA with a fresh cell id.
func newCA(now time.Time) (*CA, []byte, error) {
	key, keyPEM, err := credentials.NewKey()
	if err != nil {
		return nil, nil, err
	}
	var idb [8]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, nil, err
	}
	cellID := "cell-" + hex.EncodeToString(idb[:])
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "omegacell CA " + cellID, Organization: []string{"omegacell " + cellID}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{{Scheme: identity.Scheme, Host: cellID}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: create CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key, CellID: cellID}, keyPEM, nil
}

// loadCA reads the CA of dir; ok is false when there is none yet.
func loadCA(dir string) (ca *CA, ok bool, err error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if errors.Is(err, fs.ErrNotExist) {
		if _, kerr := os.Stat(filepath.Join(dir, CAKeyFile)); kerr == nil {
			return nil, false, fmt.Errorf("pki: %s exists without %s; restore it or remove both to create a new cell CA (every credential of the old one stops working)", CAKeyFile, CAFile)
		}
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pki: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, false, fmt.Errorf("pki: %s without its key: %w", CAFile, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, false, fmt.Errorf("pki: %s and %s: %w", CAFile, CAKeyFile, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, false, fmt.Errorf("pki: %s: %w", CAFile, err)
	}
	if !cert.IsCA || len(cert.URIs) != 1 || cert.URIs[0].Scheme != identity.Scheme || cert.URIs[0].Host == "" {
		return nil, false, fmt.Errorf("pki: %s is not an omegacell cell CA", CAFile)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, false, fmt.Errorf("pki: %s: key of type %T cannot sign", CAKeyFile, pair.PrivateKey)
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: signer, CellID: cert.URIs[0].Host}, true, nil
}

// hosts are the names the server certificate must cover.
func hosts(extra []string) (dns []string, ips []net.IP) {
	dns = []string{"localhost"}
	ips = []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	if h, err := os.Hostname(); err == nil && h != "" {
		dns = append(dns, h)
	}
	for _, s := range extra {
		if s == "" {
			continue
		}
		if ip := net.ParseIP(s); ip != nil {
			if ip.IsUnspecified() {
				continue
			}
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if !slices.Contains(dns, s) {
			dns = append(dns, s)
		}
	}
	return dns, ips
}

// covers reports whether c names every host and is signed by ca.
func covers(c *x509.Certificate, ca *CA, dns []string, ips []net.IP, now time.Time) bool {
	if c.CheckSignatureFrom(ca.Cert) != nil || now.Add(renewBefore).After(c.NotAfter) {
		return false
	}
	for _, d := range dns {
		if !slices.Contains(c.DNSNames, d) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
