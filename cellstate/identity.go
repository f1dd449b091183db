package cellstate

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/wirefmt"
)

// The cell's identity. A cell id is a UUID made when the data directory
// is first opened; the incarnation counts the opens of that directory
// (each start of the server). Both are durable before the store serves
// anything. Every Snapshot chunk, Watch response and RegisterMachine
// answer carries them, so a client that reconnects to an address now
// served by another cell (or by the same cell after a restart or a
// restore) learns that its copy belongs to another history and
// resnapshots instead of resuming its watch. This is what etcd's cluster
// id and member id in every response header are for.
var (
	keyCellID      = []byte("meta/cell-id")
	keyIncarnation = []byte("meta/incarnation")
)

// fieldIdentity is the CellIdentity field's number in SnapshotResponse and
// WatchResponse (both 6), so one encoded suffix serves both.
const fieldIdentity = wirefmt.WatchCell

// One suffix serves both only while the numbers agree.
var _ [0]struct{} = [wirefmt.WatchCell - wirefmt.SnapCell]struct{}{}

// cellIdentity is the store's identity and its encoding as field 6.
type cellIdentity struct {
	pb   *cellv1.CellIdentity
	wire []byte // tag + length + CellIdentity: appended to encoded responses
}

// loadIdentity reads the cell id (creating it on a new store), bumps the
// incarnation and writes both with a synced write.
func (s *Store) loadIdentity() error {
	id := ""
	if v, closer, err := s.db.Get(keyCellID); err == nil {
		id = string(v)
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("cellstate: read cell id: %w", err)
	}
	if id == "" {
		id = uuid.NewString()
	} else if _, err := uuid.Parse(id); err != nil {
		return fmt.Errorf("cellstate: stored cell id %.100q is not a UUID: %w", id, err)
	}
	var inc uint64
	if v, closer, err := s.db.Get(keyIncarnation); err == nil {
		if len(v) == 8 {
			inc = binary.BigEndian.Uint64(v)
		}
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("cellstate: read incarnation: %w", err)
	}
	inc++
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(keyCellID, []byte(id), nil); err != nil {
		return err
	}
	if err := b.Set(keyIncarnation, uint64Value(inc), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("cellstate: write cell identity: %w", err)
	}
	s.identity = newCellIdentity(id, inc)
	s.log.Debug("cell identity", "cell_id", id, "incarnation", inc)
	return nil
}

func newCellIdentity(id string, inc uint64) cellIdentity {
	pb := &cellv1.CellIdentity{Id: id, Incarnation: inc}
	body, err := proto.Marshal(pb)
	if err != nil {
		panic(err) // two scalar fields cannot fail to encode
	}
	wire := protowire.AppendTag(nil, fieldIdentity, protowire.BytesType)
	return cellIdentity{pb: pb, wire: protowire.AppendBytes(wire, body)}
}

// Identity returns the cell's id and this start's incarnation. The
// message is shared: do not modify it.
func (s *Store) Identity() *cellv1.CellIdentity { return s.identity.pb }
