package cellserver

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/limits"
)

// serverNATSUser is the cell server's own NATS user.
const serverNATSUser = "cell-server"

// natsAuth is the embedded NATS server's authentication (its
// CustomClientAuthentication hook): it decides who connects and gives each
// connection a NATS user with per-user permissions, which NATS itself then
// enforces on every publish and subscribe.
//   - The cell server's own connection: a random password made at start,
//     over TLS; it may do everything.
//   - agent/M: a client certificate of the cell's CA (verified by NATS's
//     TLS), not revoked, not expired; it may publish only its heartbeat
//     subject and answer requests, and subscribe only to its logs subject.
//   - a fleet agent/P (fleet): publish its fleet heartbeat subject only,
//     subscribe to nothing.
//   - Anyone else (no certificate, another role, revoked): refused.
//
// The connection is closed when the certificate expires, or when it is
// revoked (disconnectRevoked).
type natsAuth struct {
	prefix   string
	password []byte
	revoked  *cellstate.Revocations
	log      *slog.Logger
}

func newNATSAuth(prefix string, revoked *cellstate.Revocations, log *slog.Logger) (*natsAuth, error) {
	var pw [32]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, err
	}
	return &natsAuth{prefix: prefix, password: []byte(hex.EncodeToString(pw[:])), revoked: revoked, log: log}, nil
}

// Check implements server.Authentication.
func (a *natsAuth) Check(c server.ClientAuthentication) bool {
	if c.Kind() != server.CLIENT {
		return false
	}
	if o := c.GetOpts(); o != nil && o.Username == serverNATSUser {
		if subtle.ConstantTimeCompare([]byte(o.Password), a.password) != 1 {
			a.refuse(c, "wrong password for the server's own user")
			return false
		}
		c.RegisterUser(&server.User{Username: serverNATSUser})
		return true
	}
	cs := c.GetTLSConnectionState()
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		a.refuse(c, "no verified client certificate")
		return false
	}
	leaf := cs.VerifiedChains[0][0]
	if a.revoked.IsRevoked(leaf.SerialNumber) {
		a.refuse(c, "credential revoked")
		return false
	}
	if time.Now().After(leaf.NotAfter) {
		a.refuse(c, "credential expired")
		return false
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		a.refuse(c, err.Error())
		return false
	}
	perms, err := agentPermissions(a.prefix, id)
	if err != nil {
		a.refuse(c, err.Error())
		return false
	}
	c.RegisterUser(&server.User{Username: natsUsername(id, leaf.SerialNumber.Text(16)), Permissions: perms, ConnectionDeadline: leaf.NotAfter})
	return true
}

// natsUsername names an agent's NATS user: its identity and the serial of
// the certificate it connected with, so a revocation finds its connections.
func natsUsername(id identity.Identity, serial string) string {
	return id.String() + "#" + serial
}

// disconnectRevoked closes the NATS connections that authenticated with a
// certificate just revoked (new ones are refused by Check).
func disconnectRevoked(ns *server.Server, log *slog.Logger) func(serial string) {
	return func(serial string) {
		conns, err := ns.Connz(&server.ConnzOptions{Username: true, Limit: math.MaxInt32})
		if err != nil {
			log.Error("listing NATS connections to close a revoked credential's", "err", err)
			return
		}
		for _, c := range conns.Conns {
			if strings.HasSuffix(c.AuthorizedUser, "#"+serial) {
				if err := ns.DisconnectClientByID(c.Cid); err == nil {
					log.Info("closed the NATS connection of a revoked credential", "user", c.AuthorizedUser)
				}
			}
		}
	}
}

func (a *natsAuth) refuse(c server.ClientAuthentication, why string) {
	a.log.Warn("NATS connection refused", "remote", c.RemoteAddress().String(), "reason", why)
}

// agentPermissions are what an agent identity may do on NATS.
func agentPermissions(prefix string, id identity.Identity) (*server.Permissions, error) {
	if id.Role != identity.Agent {
		return nil, errNotAgent(id)
	}
	denyAll := &server.SubjectPermission{Deny: []string{">"}}
	if id.Fleet {
		subject, err := limits.FleetHeartbeatSubject(prefix, id.Name)
		if err != nil {
			return nil, err
		}
		return &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{subject}}, Subscribe: denyAll}, nil
	}
	hb, err := limits.HeartbeatSubject(prefix, id.Name)
	if err != nil {
		return nil, err
	}
	logs, err := limits.LogsSubject(prefix, id.Name)
	if err != nil {
		return nil, err
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{hb}},
		Subscribe: &server.SubjectPermission{Allow: []string{logs}},
		// Replies to the server's log requests, one per request.
		Response: &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	}, nil
}

type errNotAgent identity.Identity

func (e errNotAgent) Error() string {
	return identity.Identity(e).String() + " is not an agent: only agents and the cell server use NATS"
}
