package webui

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"html"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/login"
)

// Sessions: `cell ui` makes a login token with the user's credential (see
// package login); GET /login?token= checks it once and answers with an
// HttpOnly, SameSite=Strict session cookie bound to the credential's
// identity and serial. Every request checks the session's expiry and the
// credential's revocation, so revoking a credential also ends its
// browser sessions. Sessions live in memory: a restart of the server
// logs every browser out.
const (
	cookieName  = "omegacell_session"
	sessionTTL  = 12 * time.Hour
	maxSessions = 10_000
)

type session struct {
	id     identity.Identity
	serial *big.Int
	exp    time.Time
}

type sessions struct {
	roots   *x509.CertPool
	revoked func(*big.Int) bool
	now     func() time.Time

	mu     sync.Mutex
	byKey  map[string]*session
	nonces map[string]time.Time // used tokens, until they expire
}

func newSessions(roots *x509.CertPool, revoked func(*big.Int) bool) *sessions {
	if revoked == nil {
		revoked = func(*big.Int) bool { return false }
	}
	return &sessions{roots: roots, revoked: revoked, now: time.Now, byKey: map[string]*session{}, nonces: map[string]time.Time{}}
}

func (s *sessions) prune(now time.Time) {
	for k, v := range s.byKey {
		if !now.Before(v.exp) {
			delete(s.byKey, k)
		}
	}
	for k, exp := range s.nonces {
		if !now.Before(exp) {
			delete(s.nonces, k)
		}
	}
}

// open checks a token and starts a session; it returns the cookie value.
func (s *sessions) open(token string) (string, *session, error) {
	now := s.now()
	c, err := login.Verify(token, s.roots, now)
	if err != nil {
		return "", nil, err
	}
	if s.revoked(c.Cert.SerialNumber) {
		return "", nil, fmt.Errorf("credential %x is revoked", c.Cert.SerialNumber)
	}
	id, err := identity.FromCertificate(c.Cert)
	if err != nil {
		return "", nil, fmt.Errorf("token's certificate: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", nil, err
	}
	sess := &session{id: id, serial: c.Cert.SerialNumber, exp: now.Add(sessionTTL)}
	if c.Cert.NotAfter.Before(sess.exp) {
		sess.exp = c.Cert.NotAfter
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, used := s.nonces[c.Nonce]; used {
		return "", nil, fmt.Errorf("token was used already: run `cell ui` again")
	}
	if len(s.byKey) >= maxSessions || len(s.nonces) >= maxSessions {
		s.prune(now)
		if len(s.byKey) >= maxSessions || len(s.nonces) >= maxSessions {
			return "", nil, fmt.Errorf("too many open sessions")
		}
	}
	s.nonces[c.Nonce] = c.Exp
	k := hex.EncodeToString(key)
	s.byKey[k] = sess
	return k, sess, nil
}

// lookup is the identity of a request's session, if it holds a live one.
func (s *sessions) lookup(r *http.Request) (identity.Identity, bool) {
	if s.roots == nil {
		return identity.Identity{Role: identity.Admin}, true // insecure cell
	}
	ck, err := r.Cookie(cookieName)
	if err != nil || len(ck.Value) != 64 {
		return identity.Identity{}, false
	}
	s.mu.Lock()
	sess := s.byKey[ck.Value]
	if sess != nil && !s.now().Before(sess.exp) {
		delete(s.byKey, ck.Value)
		sess = nil
	}
	s.mu.Unlock()
	if sess == nil || s.revoked(sess.serial) {
		return identity.Identity{}, false
	}
	return sess.id, true
}

func (s *sessions) close(r *http.Request) {
	if ck, err := r.Cookie(cookieName); err == nil {
		s.mu.Lock()
		delete(s.byKey, ck.Value)
		s.mu.Unlock()
	}
}

// login is GET /login?token=: a session cookie, then the view.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	if u.opts.Roots == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	key, sess, err := u.sessions.open(r.URL.Query().Get("token"))
	if err != nil {
		u.opts.Log.Info("web view: login refused", "remote", r.RemoteAddr, "err", err)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, "<!doctype html><title>omegacell: login refused</title><p>Login refused: %s.</p><p>Run <code>cell ui</code> for a new link.</p>", html.EscapeString(err.Error()))
		return
	}
	u.opts.Log.Info("web view: login", "identity", sess.id.String(), "remote", r.RemoteAddr)
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: key, Path: "/", Expires: sess.exp,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	u.sessions.close(r)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// authed wraps a handler that needs a session; without one the answer is
// 401 and no data. Requests that change something must also carry the
// X-Omegacell header, which a page of another origin cannot send without
// a CORS preflight this server never grants (with the SameSite cookie,
// a guard against cross-site requests).
func (u *UI) authed(h func(http.ResponseWriter, *http.Request, identity.Identity)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := u.sessions.lookup(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, "not logged in: run `cell ui` and open the link it prints")
			return
		}
		if r.Method != http.MethodGet && r.Header.Get("X-Omegacell") != "1" {
			writeError(w, http.StatusForbidden, "missing X-Omegacell header")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, id)
	}
}
