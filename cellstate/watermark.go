package cellstate

import (
	"encoding/binary"
	"time"

	"github.com/nats-io/nats.go"
)

// Watermarks: how far the server has heard. A flood does not only drop
// heartbeats, it delays them: queued behind the flood in the
// subscription, a live agent's heartbeat may be processed after its
// machine's grace ran out. So silence is not measured against the wall
// clock but against a watermark: the liveness publishes a marker on each
// heartbeat subscription's subject every so often, through the connection
// that subscribes, and remembers when it sent it. NATS delivers in order,
// so once a marker sent at T is processed, every heartbeat that reached
// NATS before T has been processed too: the server has heard everything
// up to T. A machine is silent only if nothing came from it for the grace
// before the watermark; while a flood holds markers back, the watermark
// stands still and no machine is marked down.
//
// A marker carries only a sequence number; its send time stays in the
// server. A client that copies a marker it saw can only publish the copy
// after the original, so a copy never moves the watermark ahead of what
// was processed; an unknown number is ignored.

// markReply tags marker messages (with an 8-byte sequence number).
const markReply = "_omegacell.liveness.mark"

// maxMarksInFlight bounds the markers remembered per subscription while
// a flood holds them back (older ones are forgotten: conservative, the
// watermark then waits for a newer one).
const maxMarksInFlight = 4096

type sentMark struct {
	seq uint64
	at  time.Time
}

// markStream is the markers of one subscription (guarded by Liveness.mu).
type markStream struct {
	subject string
	next    uint64
	sent    []sentMark // in sending order
	heard   time.Time  // send time of the newest marker processed
}

// markSubject is the subject a subscription's markers go to.
func markSubject(subscribed string) string {
	if n := len(subscribed); n >= 2 && subscribed[n-2:] == ".>" {
		return subscribed[:n-1] + "_liveness"
	}
	return subscribed
}

// sendMarks publishes one marker per subscription.
func (l *Liveness) sendMarks(now time.Time) {
	msgs := make([]*nats.Msg, 0, len(l.marks))
	l.mu.Lock()
	for _, ms := range l.marks {
		ms.next++
		if len(ms.sent) >= maxMarksInFlight {
			ms.sent = append(ms.sent[:0], ms.sent[1:]...)
		}
		ms.sent = append(ms.sent, sentMark{seq: ms.next, at: now})
		msgs = append(msgs, &nats.Msg{Subject: ms.subject, Reply: markReply, Data: binary.BigEndian.AppendUint64(nil, ms.next)})
	}
	l.mu.Unlock()
	for _, m := range msgs {
		if err := l.opts.Conn.PublishMsg(m); err != nil {
			l.store.log.Debug("liveness marker not sent", "err", err)
		}
	}
}

// isMark reports whether msg is a marker, and if it is, takes it.
func (l *Liveness) isMark(i int, msg *nats.Msg) bool {
	if msg.Reply != markReply || len(msg.Data) != 8 {
		return false
	}
	seq := binary.BigEndian.Uint64(msg.Data)
	l.mu.Lock()
	defer l.mu.Unlock()
	ms := l.marks[i]
	k := 0
	for k < len(ms.sent) && ms.sent[k].seq < seq {
		k++
	}
	if k < len(ms.sent) && ms.sent[k].seq == seq {
		ms.heard = ms.sent[k].at
		ms.sent = append(ms.sent[:0], ms.sent[k+1:]...)
	}
	return true
}

// watermark is the moment up to which every subscription has processed
// what NATS received (l.mu held); the server's start until markers flow.
func (l *Liveness) watermark() time.Time {
	w := time.Time{}
	for _, ms := range l.marks {
		if ms.heard.IsZero() {
			return l.start
		}
		if w.IsZero() || ms.heard.Before(w) {
			w = ms.heard
		}
	}
	if w.IsZero() || w.Before(l.start) {
		return l.start
	}
	return w
}
