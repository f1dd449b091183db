package credentials

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/omegacell/omegacell/proto/identity"
)

// File names inside a bundle directory.
const (
	CAFile   = "ca.pem"
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// Env names the environment variable Find reads after the flag.
const Env = "CELL_CREDENTIALS"

// DefaultDir is where `cell server` and `cell dev` with their default
// --data write the admin bundle, relative to the working directory.
var DefaultDir = filepath.Join("cell-data", "pki", "admin")

// HowToGet is what a command without credentials tells its user.
const HowToGet = "an admin of the cell issues one with `cell credentials issue --role user --name NAME --tenant T --out DIR` " +
	"(the admin bundle of a cell is <data>/pki/admin, created by `cell server` and `cell dev`); pass it with --credentials DIR or $" + Env

// Bundle is a loaded credential: a client certificate with its key, the
// identity it names and the cell's CA.
type Bundle struct {
	// Dir is where the bundle was read from ("" when built in memory).
	Dir      string
	Cert     tls.Certificate
	Leaf     *x509.Certificate
	Roots    *x509.CertPool
	CAPEM    []byte
	Identity identity.Identity
}

// Load reads the bundle in dir and checks that it is usable now: the
// certificate verifies against the bundle's CA, is within its lifetime and
// names an identity.
func Load(dir string) (*Bundle, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("credentials %s: %w", dir, err)
		}
		return b, nil
	}
	caPEM, err := read(CAFile)
	if err != nil {
		return nil, err
	}
	certPEM, err := read(CertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read(KeyFile)
	if err != nil {
		return nil, err
	}
	b, err := FromPEM(caPEM, certPEM, keyPEM, time.Now())
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", dir, err)
	}
	b.Dir = dir
	return b, nil
}

// FromPEM builds a bundle from its three PEM files' contents and checks it
// at time now.
func FromPEM(caPEM, certPEM, keyPEM []byte, now time.Time) (*Bundle, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no PEM certificate", CAFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", CertFile, KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", CertFile, err)
		}
		cert.Leaf = leaf
	}
	switch {
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("%s: not valid before %s", CertFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("%s: expired at %s; ask an admin of the cell for a new one", CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%s is not a client certificate of the CA in %s: %w", CertFile, CAFile, err)
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CertFile, err)
	}
	return &Bundle{Cert: cert, Leaf: leaf, Roots: roots, CAPEM: caPEM, Identity: id}, nil
}

// Find loads the bundle named by flag, else by $CELL_CREDENTIALS, else the
// one in DefaultDir when that directory exists. Without one it says which
// files it looked for and how to get a bundle.
func Find(flag string) (*Bundle, error) {
	if flag = strings.TrimSpace(flag); flag != "" {
		b, err := Load(flag)
		if err != nil {
			return nil, fmt.Errorf("--credentials: %w", err)
		}
		return b, nil
	}
	if env := strings.TrimSpace(os.Getenv(Env)); env != "" {
		b, err := Load(env)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", Env, err)
		}
		return b, nil
	}
	if _, err := os.Stat(DefaultDir); err == nil {
		return Load(DefaultDir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("credentials %s: %w", DefaultDir, err)
	}
	files := make([]string, 3)
	for i, f := range []string{CAFile, CertFile, KeyFile} {
		files[i] = filepath.Join(".", DefaultDir, f)
	}
	return nil, fmt.Errorf("no credentials: neither --credentials nor $%s is set, and %s do not exist; %s",
		Env, strings.Join(files, ", "), HowToGet)
}

// ServerName is the name a client verifies the server's certificate for:
// the host of the address it dials (host:port, or a URL's host).
func ServerName(addr string) string {
	if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
	}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return strings.Trim(addr, "[]")
}

// ClientTLS is the TLS 1.3 configuration of a client presenting b and
// verifying the server for serverName against b's CA.
func (b *Bundle) ClientTLS(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{b.Cert},
		RootCAs:      b.Roots,
		ServerName:   serverName,
	}
}

// Write stores a bundle in dir (created 0700 if missing): the key 0600,
// the certificates 0644. Each file is written to a temporary name and
// renamed, so a reader sees the old file or the new one.
func Write(dir string, caPEM, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{KeyFile, keyPEM, 0o600}, {CertFile, certPEM, 0o644}, {CAFile, caPEM, 0o644}} {
		if err := WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// WriteFile writes data to path with mode through a temporary file that is
// synced and renamed.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	return nil
}

// Describe is one line naming a bundle for logs: its identity, where it
// came from and when it expires.
func (b *Bundle) Describe() string {
	return fmt.Sprintf("%s from %s (expires %s)", b.Identity, cmp.Or(b.Dir, "memory"), b.Leaf.NotAfter.UTC().Format(time.RFC3339))
}
