package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

// Cell is the PKI of one cell, as found or created in <data>/pki.
type Cell struct {
	Dir    string
	CA     *CA
	Server tls.Certificate
	// AdminDir holds the admin bundle.
	AdminDir string
}

// Ensure finds the cell's PKI in dir (normally <data>/pki) or creates
// what is missing: the CA (ca.pem, ca-key.pem), the server certificate
// for loopback, localhost, the host name and sans, and the admin bundle
// (admin/ca.pem, cert.pem, key.pem). Keys are written 0600 and
// directories 0700. Running it again changes nothing, except that a
// server certificate that misses a name or nears its end is renewed and
// an admin bundle that no longer loads (expired, another CA) is replaced.
func Ensure(dir string, sans []string, log *slog.Logger) (*Cell, error) {
	now := time.Now()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	ca, ok, err := loadCA(dir)
	if err != nil {
		return nil, err
	}
	if !ok {
		var keyPEM []byte
		if ca, keyPEM, err = newCA(now); err != nil {
			return nil, err
		}
		// The key first: a CA certificate without its key is refused.
		if err := credentials.WriteFile(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := credentials.WriteFile(filepath.Join(dir, CAFile), ca.CertPEM, 0o644); err != nil {
			return nil, err
		}
		log.Info("created the cell's certificate authority", "cell", ca.CellID, "dir", dir)
	}
	c := &Cell{Dir: dir, CA: ca, AdminDir: filepath.Join(dir, AdminDir)}
	if c.Server, err = ensureServer(dir, ca, sans, now, log); err != nil {
		return nil, err
	}
	if err := ensureAdmin(c.AdminDir, ca, now, log); err != nil {
		return nil, err
	}
	return c, nil
}

// ShareCA copies the cell's CA (certificate and key, 0600) into another
// server's PKI directory (normally <data>/pki, created 0700), before that
// server's first start: the servers of a replicated cell share one CA.
func (c *Cell) ShareCA(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	for _, f := range []string{CAFile, CAKeyFile} {
		b, err := os.ReadFile(filepath.Join(c.Dir, f))
		if err == nil {
			err = credentials.WriteFile(filepath.Join(dir, f), b, 0o600)
		}
		if err != nil {
			return fmt.Errorf("pki: share the CA with %s: %w", dir, err)
		}
	}
	return nil
}

// ensureServer loads the server certificate, or issues one when it is
// missing, of another CA, near its end or missing a name.
func ensureServer(dir string, ca *CA, sans []string, now time.Time, log *slog.Logger) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile)
	dns, ips := hosts(sans)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	switch {
	case err == nil:
		if leaf, perr := x509.ParseCertificate(pair.Certificate[0]); perr == nil && covers(leaf, ca, dns, ips, now) {
			pair.Leaf = leaf
			return pair, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		log.Warn("server certificate unreadable; issuing a new one", "dir", dir, "err", err)
	}
	key, keyPEM, err := credentials.NewKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, certPEM, err := ca.issueServer(dns, ips, key.Public(), now)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := credentials.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := credentials.WriteFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	log.Info("issued the server certificate", "dns", dns, "ips", ips, "expires", leaf.NotAfter.UTC().Format(time.RFC3339))
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// ensureAdmin keeps a usable admin bundle in dir.
func ensureAdmin(dir string, ca *CA, now time.Time, log *slog.Logger) error {
	b, err := credentials.Load(dir)
	if err == nil && b.Leaf.CheckSignatureFrom(ca.Cert) == nil && b.Identity.Role == identity.Admin {
		return nil
	}
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		log.Warn("admin bundle unusable; issuing a new one", "dir", dir, "err", err)
	}
	key, keyPEM, err := credentials.NewKey()
	if err != nil {
		return err
	}
	admin, _ := identity.New(identity.Admin, "")
	leaf, certPEM, err := ca.Issue(admin, key.Public(), DefaultTTL, now)
	if err != nil {
		return err
	}
	if err := credentials.Write(dir, ca.CertPEM, certPEM, keyPEM); err != nil {
		return err
	}
	log.Info("wrote the admin credentials", "dir", dir, "expires", leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// IssueBundle issues a credential for id in memory (for the parts a
// server starts in its own process: cell dev's schedulers and agents, the
// load benchmark, tests).
func (ca *CA) IssueBundle(id identity.Identity, ttl time.Duration) (*credentials.Bundle, error) {
	key, keyPEM, err := credentials.NewKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	_, certPEM, err := ca.Issue(id, key.Public(), ttl, now)
	if err != nil {
		return nil, err
	}
	return credentials.FromPEM(ca.CertPEM, certPEM, keyPEM, now)
}
