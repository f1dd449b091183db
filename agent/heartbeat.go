package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// Heartbeat defaults.
const (
	// defaultSubjectPrefix is used when the server names none.
	defaultSubjectPrefix = "omegacell"
	// defaultHeartbeat is used when the server names no interval.
	defaultHeartbeat = time.Second
	// maxBatchBytes bounds one NATS message (the NATS default max_payload
	// is 1 MiB); a batch of more heartbeats is split.
	maxBatchBytes = 1 << 20
)

// heartbeatSubject is where HeartbeatBatch messages of sender go: the
// subject of a machine's agent, or of a simulated fleet (limits); the NATS
// server lets an agent publish on its own subject only.
func heartbeatSubject(prefix, sender string, fleet bool) (string, error) {
	if prefix == "" {
		prefix = defaultSubjectPrefix
	}
	if fleet {
		return limits.FleetHeartbeatSubject(prefix, sender)
	}
	return limits.HeartbeatSubject(prefix, sender)
}

// heartbeater publishes the fleet's heartbeats: every interval one
// HeartbeatBatch holding every machine (split only past maxBatchBytes), and
// every usageEvery with usage samples. The NATS address, subject and
// interval come from registration and may change when the server restarts.
type heartbeater struct {
	log        *slog.Logger
	fleet      *fleet
	usage      usageSource
	usageEvery time.Duration
	// override is the --heartbeat interval; 0 takes the server's.
	override time.Duration
	connName string
	// sender is the machine id of a real agent, or the prefix of a
	// simulated fleet (fleetSender); it names the heartbeat subject.
	sender      string
	fleetSender bool
	// natsTLS is the TLS configuration for a NATS URL (nil: no TLS,
	// --insecure).
	natsTLS func(url string) *tls.Config

	mu       sync.Mutex
	nc       *nats.Conn
	url      string
	subject  string
	interval time.Duration
	changed  chan struct{}

	failing   bool
	lastUsage time.Time

	// onConnect, when set, is called (under mu) with the NATS connection
	// and subject prefix whenever either changes, until it succeeds: the
	// real agent's log server subscribes there. attached is what it last
	// succeeded for.
	onConnect func(nc *nats.Conn, prefix string) error
	attached  struct {
		nc     *nats.Conn
		prefix string
	}

	// Counters, for metrics and tests.
	batches    atomic.Int64
	heartbeats atomic.Int64
	bytes      atomic.Int64
}

func newHeartbeater(log *slog.Logger, f *fleet, usage usageSource, usageEvery, override time.Duration, connName string) *heartbeater {
	return &heartbeater{
		log: log, fleet: f, usage: usage, usageEvery: usageEvery, override: override, connName: connName,
		changed:   make(chan struct{}, 1),
		lastUsage: time.Now(),
	}
}

// configure applies what registration answered: it connects to a new NATS
// address (nats.go reconnects to the same one by itself).
func (h *heartbeater) configure(url, prefix string, interval time.Duration) error {
	if url == "" {
		return errors.New("registration answered no NATS url")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.override > 0 {
		interval = h.override
	} else if interval <= 0 {
		interval = defaultHeartbeat
	}
	subject, err := heartbeatSubject(prefix, h.sender, h.fleetSender)
	if err != nil {
		return err
	}
	if url != h.url {
		opts := []nats.Option{
			nats.Name(h.connName),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(250 * time.Millisecond),
			nats.RetryOnFailedConnect(true),
		}
		if h.natsTLS != nil {
			opts = append(opts, nats.Secure(h.natsTLS(url)))
		}
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			return err
		}
		if h.nc != nil {
			h.nc.Close()
		}
		h.nc, h.url = nc, url
		h.log.Info("heartbeats go to NATS", "url", url, "subject", subject, "interval", interval)
	}
	h.subject = subject
	if prefix == "" {
		prefix = defaultSubjectPrefix
	}
	if h.onConnect != nil && (h.attached.nc != h.nc || h.attached.prefix != prefix) {
		if err := h.onConnect(h.nc, prefix); err != nil {
			return err
		}
		h.attached.nc, h.attached.prefix = h.nc, prefix
	}
	if interval != h.interval {
		h.interval = interval
		select {
		case h.changed <- struct{}{}:
		default:
		}
	}
	return nil
}

// run beats until ctx ends, then closes the NATS connection.
func (h *heartbeater) run(ctx context.Context) {
	defer func() {
		h.mu.Lock()
		if h.nc != nil {
			h.nc.Close()
		}
		h.mu.Unlock()
	}()
	var tick <-chan time.Time
	var ticker *time.Ticker
	for {
		select {
		case <-ctx.Done():
			if ticker != nil {
				ticker.Stop()
			}
			return
		case <-h.changed:
			h.mu.Lock()
			interval := h.interval
			h.mu.Unlock()
			if ticker != nil {
				ticker.Stop()
			}
			ticker = time.NewTicker(interval)
			tick = ticker.C
		case now := <-tick:
			h.beat(now)
		}
	}
}

// beat publishes one round of heartbeats.
func (h *heartbeater) beat(now time.Time) {
	// A plain heartbeat names only its machine: what runs there is read
	// (and sampled) only when usage is due.
	ids := h.fleet.machineIDs()
	hbs := make([]*cellv1.Heartbeat, len(ids))
	for i, id := range ids {
		hbs[i] = &cellv1.Heartbeat{MachineId: id, TimeUnixNano: now.UnixNano()}
	}
	if now.Sub(h.lastUsage) >= h.usageEvery {
		h.lastUsage = now
		usage := h.usage.sample(now, h.fleet.running())
		for i, hb := range hbs {
			hb.Usage = usage[i].machine
			hb.Tasks = usage[i].tasks
		}
	}
	h.mu.Lock()
	nc, subject := h.nc, h.subject
	h.mu.Unlock()
	if nc == nil {
		return
	}
	limit := min(maxBatchBytes, int(nc.MaxPayload())) - 1024
	var err error
	for _, data := range encodeBatches(hbs, limit) {
		if err = nc.Publish(subject, data); err != nil {
			break
		}
		h.batches.Add(1)
		h.bytes.Add(int64(len(data)))
	}
	if err == nil {
		h.heartbeats.Add(int64(len(hbs)))
	}
	switch {
	case err != nil && !h.failing:
		h.failing = true
		h.log.Warn("cannot publish heartbeats; will keep trying", "err", err)
	case err == nil && h.failing:
		h.failing = false
		h.log.Info("heartbeats are published again")
	}
}

// encodeBatches encodes heartbeats as HeartbeatBatch messages of at most
// limit bytes each (a single heartbeat larger than limit gets a batch of
// its own).
func encodeBatches(hbs []*cellv1.Heartbeat, limit int) [][]byte {
	var out [][]byte
	start, size := 0, 0
	flush := func(end int) {
		if end > start {
			data, err := proto.Marshal(&cellv1.HeartbeatBatch{Heartbeats: hbs[start:end]})
			if err == nil {
				out = append(out, data)
			}
		}
		start, size = end, 0
	}
	for i, hb := range hbs {
		n := proto.Size(hb)
		// Field 1, length-delimited: one tag byte, the length, the body.
		entry := 1 + protowire.SizeVarint(uint64(n)) + n
		if size+entry > limit && i > start {
			flush(i)
		}
		size += entry
	}
	flush(len(hbs))
	return out
}
