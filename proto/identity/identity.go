package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/omegacell/omegacell/proto/limits"
)

// Role is what kind of caller an identity is.
type Role string

const (
	Admin     Role = "admin"
	Scheduler Role = "scheduler"
	Agent     Role = "agent"
	User      Role = "user"
)

// Scheme is the URI scheme of identity SANs.
const Scheme = "omegacell"

// MaxTenants bounds the tenants one user credential may name.
const MaxTenants = 64

// Identity is who a caller is.
type Identity struct {
	Role    Role
	Name    string   // empty for admin
	Tenants []string // users only, sorted, no duplicates
	// Fleet marks an agent credential of a simulated fleet: it speaks for
	// the machines NAME-<digits> (agent --simulate names them so), not
	// for a machine called NAME.
	Fleet bool
}

// String is ROLE/NAME ("admin" alone), as refusals and audit logs name it.
func (id Identity) String() string {
	if id.Role == Admin {
		return string(Admin)
	}
	return string(id.Role) + "/" + id.Name
}

// InTenant reports whether a user identity belongs to tenant t.
func (id Identity) InTenant(t string) bool {
	_, ok := slices.BinarySearch(id.Tenants, t)
	return ok
}

// SpeaksFor reports whether an agent identity may speak for machine m:
// its own machine, or for a fleet credential the machines NAME-<digits>.
func (id Identity) SpeaksFor(m string) bool {
	if id.Role != Agent {
		return false
	}
	if !id.Fleet {
		return m == id.Name
	}
	rest, ok := strings.CutPrefix(m, id.Name+"-")
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Validate checks the role, the name's syntax for that role and the
// tenants; it returns an error naming what is wrong.
func (id Identity) Validate() error {
	switch id.Role {
	case Admin:
		if id.Name != "" || len(id.Tenants) > 0 || id.Fleet {
			return errors.New("identity: admin has no name, no tenants and is no fleet")
		}
		return nil
	case Scheduler, User:
		if !limits.SchedulerName.MatchString(id.Name) {
			return fmt.Errorf("identity: %s name %q: want a DNS label (lower-case letters, digits, '-'; at most 63)", id.Role, clip(id.Name))
		}
	case Agent:
		if !limits.MachineName.MatchString(id.Name) {
			return fmt.Errorf("identity: agent machine id %q: not a machine name", clip(id.Name))
		}
	default:
		return fmt.Errorf("identity: unknown role %q (want admin, scheduler, agent or user)", clip(string(id.Role)))
	}
	if id.Fleet && id.Role != Agent {
		return fmt.Errorf("identity: only agents may be fleets, not %s", id.Role)
	}
	if id.Role != User && len(id.Tenants) > 0 {
		return fmt.Errorf("identity: only users belong to tenants, not %s", id.Role)
	}
	if len(id.Tenants) > MaxTenants {
		return fmt.Errorf("identity: %d tenants, at most %d", len(id.Tenants), MaxTenants)
	}
	for i, t := range id.Tenants {
		if !limits.SchedulerName.MatchString(t) {
			return fmt.Errorf("identity: tenant %q: want a DNS label", clip(t))
		}
		if i > 0 && id.Tenants[i-1] >= t {
			return errors.New("identity: tenants must be sorted and distinct")
		}
	}
	return nil
}

// NewFleet builds the identity of a simulated fleet whose machines are
// named prefix-<digits>.
func NewFleet(prefix string) (Identity, error) {
	id := Identity{Role: Agent, Name: prefix, Fleet: true}
	return id, id.Validate()
}

// New builds a valid identity, sorting and deduplicating the tenants.
func New(role Role, name string, tenants ...string) (Identity, error) {
	ts := slices.Clone(tenants)
	slices.Sort(ts)
	ts = slices.Compact(ts)
	if len(ts) == 0 {
		ts = nil
	}
	id := Identity{Role: role, Name: name, Tenants: ts}
	return id, id.Validate()
}

// URIs writes id as the URI SANs of a certificate of cell cellID.
func (id Identity) URIs(cellID string) []*url.URL {
	path := "/" + string(id.Role)
	if id.Role != Admin {
		path += "/" + id.Name
	}
	out := []*url.URL{{Scheme: Scheme, Host: cellID, Path: path}}
	if id.Fleet {
		out = append(out, &url.URL{Scheme: Scheme, Host: cellID, Path: "/fleet"})
	}
	for _, t := range id.Tenants {
		out = append(out, &url.URL{Scheme: Scheme, Host: cellID, Path: "/tenant/" + t})
	}
	return out
}

// Parse reads the identity written in a certificate's URI SANs. Other
// schemes are ignored; exactly one identity URI must be present.
func Parse(uris []*url.URL) (Identity, error) {
	var id Identity
	found := false
	var tenants []string
	fleet := false
	for _, u := range uris {
		if u.Scheme != Scheme {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
		switch {
		case len(parts) == 2 && parts[0] == "tenant":
			tenants = append(tenants, parts[1])
			continue
		case len(parts) == 1 && parts[0] == "fleet":
			fleet = true
			continue
		case len(parts) == 1 && parts[0] == string(Admin):
		case len(parts) == 2:
		default:
			return Identity{}, fmt.Errorf("identity: malformed identity URI %q", clip(u.String()))
		}
		if found {
			return Identity{}, errors.New("identity: certificate names more than one identity")
		}
		found = true
		id.Role = Role(parts[0])
		if len(parts) == 2 {
			id.Name = parts[1]
		}
	}
	if !found {
		return Identity{}, errors.New("identity: certificate names no omegacell identity")
	}
	if fleet {
		if id.Role != Agent {
			return Identity{}, fmt.Errorf("identity: only agents may be fleets, not %s", clip(string(id.Role)))
		}
		if len(tenants) > 0 {
			return Identity{}, errors.New("identity: a fleet has no tenants")
		}
		return NewFleet(id.Name)
	}
	return New(id.Role, id.Name, tenants...)
}

// FromCertificate reads the identity of a verified leaf certificate.
func FromCertificate(c *x509.Certificate) (Identity, error) { return Parse(c.URIs) }

// FromPeer reads the identity of a gRPC caller from its verified TLS
// client certificate. It fails when the connection is not TLS or the
// client presented no verified certificate.
func FromPeer(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, errors.New("identity: no peer in the request's context")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, errors.New("identity: connection is not TLS")
	}
	if len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return Identity{}, errors.New("identity: no verified client certificate")
	}
	return FromCertificate(ti.State.VerifiedChains[0][0])
}

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity NewContext put in ctx.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// clip bounds a value quoted in an error.
func clip(s string) string {
	const max = 100
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
