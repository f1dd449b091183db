package cellstate

import (
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// prefixRevoked keys the revocation list in Pebble: rv/<serial hex>.
var prefixRevoked = []byte("rv/")

// serialSyntax is a certificate serial number as RevokeCredential takes
// it: lower-case hex without leading zeros, at most 20 bytes (RFC 5280).
var serialSyntax = regexp.MustCompile(`^[1-9a-f][0-9a-f]{0,39}$`)

// Revocations is the cell's list of revoked credentials. It is durable
// (its own keys in the store's Pebble, each revocation synced before it is
// acknowledged) and kept in memory as a set, so checking a certificate on
// every connection and every call is one map lookup (none while the list
// is empty). A revocation is forgotten once the credential it names has
// expired, since an expired credential is refused anyway.
type Revocations struct {
	db  *pebble.DB
	now func() time.Time

	onRevoke []func(serial string) // set before serving (OnRevoke)

	n   atomic.Int64 // len(set), read without the lock
	wmu sync.Mutex   // serializes Revoke; held across the synced write
	mu  sync.RWMutex // guards set; never held across I/O
	set map[string]*cellv1.RevokedCredential
}

// OpenRevocations loads the revocation list of store, dropping the
// entries of credentials that have expired.
func OpenRevocations(store *Store) (*Revocations, error) {
	r := &Revocations{db: store.db, now: store.opts.Now, set: make(map[string]*cellv1.RevokedCredential)}
	now := r.now()
	var expired [][]byte
	err := store.scan(prefixRevoked, func(k, v []byte) error {
		rc := &cellv1.RevokedCredential{}
		if err := proto.Unmarshal(v, rc); err != nil {
			return err
		}
		if rc.NotAfterUnix > 0 && now.Unix() > rc.NotAfterUnix {
			expired = append(expired, append([]byte(nil), k...))
			return nil
		}
		r.set[rc.Serial] = rc
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cellstate: revocation list: %w", err)
	}
	for _, k := range expired {
		if err := r.db.Delete(k, pebble.Sync); err != nil {
			return nil, fmt.Errorf("cellstate: revocation list: %w", err)
		}
	}
	r.n.Store(int64(len(r.set)))
	return r, nil
}

// IsRevoked reports whether the certificate with this serial is revoked.
// A nil list revokes nothing.
func (r *Revocations) IsRevoked(serial *big.Int) bool {
	if r == nil || r.n.Load() == 0 {
		return false
	}
	key := serial.Text(16)
	r.mu.RLock()
	_, ok := r.set[key]
	r.mu.RUnlock()
	return ok
}

// Revoke adds serial (lower-case hex) to the list durably. who and
// notAfter are kept for the record (notAfter 0: kept for ever). It
// reports false when the serial was revoked already.
func (r *Revocations) Revoke(serial, who string, notAfter time.Time) (bool, error) {
	if !serialSyntax.MatchString(serial) {
		return false, fmt.Errorf("serial %q: want the certificate's serial number in lower-case hex", clipName(serial))
	}
	rc := &cellv1.RevokedCredential{Serial: serial, Identity: clipName(who), RevokedUnix: r.now().Unix()}
	if !notAfter.IsZero() {
		rc.NotAfterUnix = notAfter.Unix()
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.RLock()
	_, ok := r.set[serial]
	r.mu.RUnlock()
	if ok {
		return false, nil
	}
	v, err := proto.Marshal(rc)
	if err != nil {
		return false, err
	}
	if err := r.db.Set(append(append([]byte(nil), prefixRevoked...), serial...), v, pebble.Sync); err != nil {
		return false, fmt.Errorf("cellstate: write revocation: %w", err)
	}
	r.mu.Lock()
	r.set[serial] = rc
	r.n.Store(int64(len(r.set)))
	r.mu.Unlock()
	for _, f := range r.onRevoke {
		f(serial)
	}
	return true, nil
}

// OnRevoke registers f to be called with each newly revoked serial, after
// the revocation is durable (e.g. to close connections that presented it).
// Call it before the list is in use.
func (r *Revocations) OnRevoke(f func(serial string)) { r.onRevoke = append(r.onRevoke, f) }

// List returns the revoked credentials, by serial.
func (r *Revocations) List() []*cellv1.RevokedCredential {
	r.mu.RLock()
	out := make([]*cellv1.RevokedCredential, 0, len(r.set))
	for _, rc := range r.set {
		out = append(out, proto.Clone(rc).(*cellv1.RevokedCredential))
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Serial < out[j].Serial })
	return out
}
