package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
)

// event is what the follower hands the scheduling loop, in cell order:
// a whole snapshot, one watch response, or word that the stream broke.
type event struct {
	// snapshot is every chunk of one snapshot: the loop resets its copy
	// and installs them. reason says why it was read (start, compacted).
	snapshot []*cellv1.SnapshotResponse
	reason   string
	// watch is the next revision (or a progress notification).
	watch *cellv1.WatchResponse
	// down is why the watch stream ended; the copy is stale until the next
	// watch response or snapshot.
	down error
}

// Timing of the watch stream.
const (
	// watchProgress asks the server for a progress notification after this
	// much quiet, so the loop knows its copy is current and the follower
	// knows the stream is alive.
	watchProgress = 250 * time.Millisecond
	// watchSilence ends a stream that sent nothing, not even progress, for
	// this long (a half-open connection), and starts a new one.
	watchSilence = 20 * watchProgress
	// reconnectInitial and reconnectMax bound the wait between attempts
	// to reach a server that is down.
	reconnectInitial = 50 * time.Millisecond
	reconnectMax     = 2 * time.Second
)

// follower keeps a scheduler's copy of the cell a prefix of the cell's
// history: one snapshot, then the watch stream from the snapshot's
// revision; when the watch start was compacted it reads a new snapshot,
// and when the server is unavailable it retries with backoff from the
// last revision it delivered (the server keeps its revisions across
// restarts). Every answer names the cell incarnation that sent it: when a
// watch answer comes from another one than the snapshot (another cell
// took over the address, or the server restarted or was restored) the
// follower reads a new snapshot before applying anything, so the copy
// never mixes two histories. Revisions split into fragments are joined
// before they are delivered, and the follower resumes only from whole
// revisions. It runs in its own goroutine and never touches the view:
// everything goes to the loop over events.
type follower struct {
	state  cellv1.StateServiceClient
	events chan<- event
	log    *slog.Logger
	m      *metrics
	rng    *rand.Rand // jitter only
}

func (f *follower) run(ctx context.Context) {
	var rev uint64
	var cell *cellv1.CellIdentity // of the snapshot the copy came from
	reason := "start"
	failures := 0
	for ctx.Err() == nil {
		if reason != "" {
			chunks, err := f.snapshot(ctx)
			if err != nil {
				failures++
				if failures == 1 || failures%20 == 0 {
					f.log.Warn("cannot read a snapshot; retrying", "failures", failures, "err", err)
				}
				if !f.send(ctx, event{down: err}) || !f.sleep(ctx, failures) {
					return
				}
				continue
			}
			f.m.resnapshots.WithLabelValues(reason).Inc()
			if !f.send(ctx, event{snapshot: chunks, reason: reason}) {
				return
			}
			rev, cell, reason = chunks[0].GetRevision(), chunks[0].GetCell(), ""
		}
		received, err := f.watch(ctx, &rev, cell)
		if ctx.Err() != nil {
			return
		}
		if received {
			failures = 0
		}
		why := watchEndReason(err)
		f.m.watchRestarts.WithLabelValues(why).Inc()
		if !f.send(ctx, event{down: err}) {
			return
		}
		switch why {
		case "compacted":
			f.log.Warn("watch start was compacted; reading a new snapshot", "revision", rev, "err", err)
			reason = "compacted"
			continue
		case "cell-changed":
			f.log.Warn("the cell server is another cell or was restarted; reading a new snapshot", "revision", rev, "err", err)
			reason = "cell-changed"
			continue
		}
		failures++
		// Say it once per outage (and now and then while it lasts).
		level := slog.LevelDebug
		if failures == 1 || failures%20 == 0 {
			level = slog.LevelWarn
		}
		f.log.Log(ctx, level, "watch ended; reconnecting", "revision", rev, "reason", why, "failures", failures, "err", err)
		if !f.sleep(ctx, failures) {
			return
		}
	}
}

// snapshot reads one whole snapshot.
func (f *follower) snapshot(ctx context.Context) ([]*cellv1.SnapshotResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := f.state.Snapshot(ctx, &cellv1.SnapshotRequest{})
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	var chunks []*cellv1.SnapshotResponse
	for {
		r, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) && len(chunks) > 0 {
				return chunks, nil
			}
			return nil, fmt.Errorf("snapshot: after %d chunks: %w", len(chunks), err)
		}
		if len(chunks) > 0 && !cellclient.SameCell(chunks[0].GetCell(), r.GetCell()) {
			return nil, fmt.Errorf("snapshot: chunk %d from %s, chunk 0 from %s", len(chunks), cellclient.Describe(r.GetCell()), cellclient.Describe(chunks[0].GetCell()))
		}
		chunks = append(chunks, r)
		if r.GetLast() {
			return chunks, nil
		}
	}
}

// errSilent ends a watch stream that went quiet for watchSilence.
var errSilent = errors.New("watch: no message, not even a progress notification")

// errCellChanged ends a watch whose answers come from another cell
// incarnation than the copy's snapshot.
var errCellChanged = errors.New("watch: answered by another cell incarnation than the snapshot")

// watch follows the stream from *rev, delivering every whole revision and
// advancing *rev, until the stream ends or an answer comes from another
// cell incarnation than cell. It reports whether anything was received.
func (f *follower) watch(ctx context.Context, rev *uint64, cell *cellv1.CellIdentity) (received bool, err error) {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := f.state.Watch(wctx, &cellv1.WatchRequest{StartRevision: *rev, ProgressIntervalMs: watchProgress.Milliseconds()})
	if err != nil {
		return false, fmt.Errorf("watch from revision %d: %w", *rev, err)
	}
	silence := time.AfterFunc(watchSilence, func() { cancel(errSilent) })
	defer silence.Stop()
	var whole cellclient.Assembler
	for {
		r, err := stream.Recv()
		if err != nil {
			if cause := context.Cause(wctx); errors.Is(cause, errSilent) {
				return received, errSilent
			}
			return received, fmt.Errorf("watch from revision %d: %w", *rev, err)
		}
		silence.Reset(watchSilence)
		received = true
		if r.GetCompactRevision() != 0 {
			// The server ends the stream with OUT_OF_RANGE next.
			return received, status.Errorf(codes.OutOfRange, "watch from revision %d: compacted up to revision %d", *rev, r.GetCompactRevision())
		}
		if !cellclient.SameCell(cell, r.GetCell()) {
			return received, fmt.Errorf("%w: %s, snapshot from %s", errCellChanged, cellclient.Describe(r.GetCell()), cellclient.Describe(cell))
		}
		if r, err = whole.Add(r); err != nil {
			return received, err
		}
		if r == nil {
			continue // more fragments of this revision follow
		}
		if !f.send(ctx, event{watch: r}) {
			return received, ctx.Err()
		}
		*rev = max(*rev, r.GetRevision())
	}
}

// watchEndReason classifies why a watch ended, for logs and metrics.
func watchEndReason(err error) string {
	switch {
	case errors.Is(err, errSilent):
		return "silent"
	case errors.Is(err, errCellChanged):
		return "cell-changed"
	case status.Code(err) == codes.OutOfRange:
		return "compacted"
	case status.Code(err) == codes.Unavailable:
		return "unavailable"
	}
	return "error"
}

func (f *follower) send(ctx context.Context, ev event) bool {
	select {
	case f.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// sleep waits before reconnect attempt n, with jitter; false if ctx ended.
func (f *follower) sleep(ctx context.Context, n int) bool {
	d := Backoff{Initial: reconnectInitial, Max: reconnectMax}.wait(n, f.rng.Float64())
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
