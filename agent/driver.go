package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/credentials"
)

// driver connects a fleet to the cell server: it registers the machines,
// keeps the fleet's views in step with the server (a view read, then a
// watch), runs the sync loop and sends what it decides (state reports, job
// reads). When the server goes away it keeps everything running and starts
// over: register again (which also tells it where NATS is now), read the
// view again, watch again.
type driver struct {
	log   *slog.Logger
	fleet *fleet
	hb    *heartbeater
	// machineFilter: watch only this machine's changes (a real agent);
	// empty: the whole cell, dispatched to the fleet's machines.
	machineFilter string

	cc       *grpc.ClientConn
	machines cellv1.MachineServiceClient
	state    cellv1.StateServiceClient
	jobs     cellv1.JobServiceClient
	agent    cellv1.AgentServiceClient

	registerConcurrency int
	syncEvery           time.Duration
	watchSilence        time.Duration
	watchProbeTimeout   time.Duration
	rpcSlots            chan struct{} // bounds concurrent reports and job reads
	inflight            sync.WaitGroup

	synced     chan struct{} // closed after the first view from the server
	syncedOnce sync.Once
	sessions   atomic.Int64 // completed view reads, for tests

	// cell is the cell incarnation the current session registered with
	// (session-owned). Views and watch answers from any other end the
	// session: the next one registers again and rereads the view, so the
	// fleet never mixes two cells' histories.
	cell *cellv1.CellIdentity
}

// Limits of the driver.
const (
	defaultRegisterConcurrency = 64
	defaultRPCSlots            = 32
	syncEvery                  = time.Second
	sessionBackoff             = 250 * time.Millisecond
	sessionBackoffCap          = 5 * time.Second
	watchProgressMillis        = 1000
	watchSilence               = 10 * watchProgressMillis * time.Millisecond
	watchProbeTimeout          = 5 * time.Second
	// maxRecvBytes is the server's own send limit.
	maxRecvBytes = cellclient.MaxMessageBytes
)

func newDriver(log *slog.Logger, server string, creds credentials.Client, f *fleet, hb *heartbeater, machineFilter string) (*driver, error) {
	if server == "" {
		return nil, errors.New("server: the cell server address is required")
	}
	cc, err := cellclient.Dial(server, creds,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)),
		// Reconnect soon after a server restart (gRPC's default first
		// backoff is a second, growing 1.6× per failure), with jitter so a
		// fleet of agents does not reconnect in lockstep.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: sessionBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: sessionBackoffCap},
			MinConnectTimeout: 5 * time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", server, err)
	}
	return &driver{
		log: log, fleet: f, hb: hb, machineFilter: machineFilter,
		cc:                  cc,
		machines:            cellv1.NewMachineServiceClient(cc),
		state:               cellv1.NewStateServiceClient(cc),
		jobs:                cellv1.NewJobServiceClient(cc),
		agent:               cellv1.NewAgentServiceClient(cc),
		registerConcurrency: defaultRegisterConcurrency,
		syncEvery:           syncEvery,
		watchSilence:        watchSilence,
		watchProbeTimeout:   watchProbeTimeout,
		rpcSlots:            make(chan struct{}, defaultRPCSlots),
		synced:              make(chan struct{}),
	}, nil
}

// run drives the fleet until ctx ends or registration is refused for good.
// It returns once every goroutine it started has ended.
func (d *driver) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); d.hb.run(ctx) }()
	go func() { defer wg.Done(); d.syncLoop(ctx) }()
	err := d.sessionLoop(ctx)
	cancel()
	wg.Wait()
	d.inflight.Wait()
	d.cc.Close()
	return err
}

// sessionLoop runs sessions, with backoff, until ctx ends. The only error
// it returns is a registration the server refuses as invalid.
func (d *driver) sessionLoop(ctx context.Context) error {
	backoff := sessionBackoff
	failures := 0
	for ctx.Err() == nil {
		began := time.Now()
		err := d.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if status.Code(err) == codes.InvalidArgument {
			return err
		}
		if time.Since(began) > 10*sessionBackoffCap {
			backoff, failures = sessionBackoff, 0
		}
		failures++
		if failures == 1 {
			d.log.Warn("lost the cell server; tasks keep running, retrying", "err", err)
		} else {
			d.log.Debug("cell server still unreachable", "err", err, "attempts", failures)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, sessionBackoffCap)
	}
	return nil
}

// errCompacted: the watch start revision is gone from the change log.
type errCompacted struct{ compactRevision uint64 }

func (e errCompacted) Error() string {
	return fmt.Sprintf("watch start revision was compacted (compact revision %d)", e.compactRevision)
}

// errCellChanged ends a session whose view or watch answers come from
// another cell incarnation than the registration.
var errCellChanged = errors.New("the cell server is another cell (or restarted) since this agent registered")

// session registers, reads the view, and follows the watch until it
// breaks.
func (d *driver) session(ctx context.Context) error {
	start, err := d.registerAll(ctx)
	if err != nil {
		return err
	}
	// A watch start that was compacted is retried from the compact
	// revision, after a fresh read of the view (which is then newer than
	// the start, as the replay merge needs).
	for range 3 {
		rev, err := d.readView(ctx)
		if err != nil {
			return err
		}
		if d.machineFilter == "" {
			start = rev
		}
		err = d.watch(ctx, start)
		var c errCompacted
		if !errors.As(err, &c) {
			return err
		}
		d.log.Info("watch start was compacted; reading the view again", "start", start, "compact_revision", c.compactRevision)
		start = c.compactRevision
	}
	return errors.New("watch start compacted three times in a row")
}

// registerAll registers every machine (with bounded concurrency),
// configures heartbeats from the answer and returns the revision to watch
// from: the highest revision the registrations answered.
func (d *driver) registerAll(ctx context.Context) (uint64, error) {
	machines := d.fleet.registrations()
	var (
		mu       sync.Mutex
		firstErr error
		first    *cellv1.RegisterMachineResponse
		rev      uint64
		wg       sync.WaitGroup
	)
	next := make(chan *cellv1.RegisterMachineRequest)
	for range min(d.registerConcurrency, len(machines)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for req := range next {
				resp, err := d.machines.RegisterMachine(ctx, req)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("register machine %s: %w", req.GetId(), err)
				}
				if err == nil {
					if first == nil {
						first = resp
					} else if !cellclient.SameCell(first.GetCell(), resp.GetCell()) && firstErr == nil {
						firstErr = fmt.Errorf("register machine %s: %w: %s, then %s", req.GetId(), errCellChanged,
							cellclient.Describe(first.GetCell()), cellclient.Describe(resp.GetCell()))
					}
					r := resp.GetRevision()
					if r == 0 {
						r = resp.GetMachine().GetModRevision()
					}
					rev = max(rev, r)
				}
				mu.Unlock()
			}
		}()
	}
	for _, req := range machines {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- req
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	interval := time.Duration(first.GetHeartbeatIntervalMs()) * time.Millisecond
	if err := d.hb.configure(first.GetNatsUrl(), first.GetSubjectPrefix(), interval); err != nil {
		return 0, fmt.Errorf("connect to NATS at %q: %w", first.GetNatsUrl(), err)
	}
	if d.cell != nil && !cellclient.SameCell(d.cell, first.GetCell()) {
		d.log.Info("registered with a new cell incarnation", "was", cellclient.Describe(d.cell), "now", cellclient.Describe(first.GetCell()))
	}
	d.cell = first.GetCell()
	d.log.Debug("registered", "machines", len(machines), "revision", rev, "cell", cellclient.Describe(d.cell))
	return rev, nil
}

// readView replaces the fleet's views with the server's: the machine's
// tasks for a real agent, a snapshot of the cell for a simulated fleet
// (whose revision it returns).
func (d *driver) readView(ctx context.Context) (uint64, error) {
	if d.machineFilter != "" {
		resp, err := d.machines.GetMachine(ctx, &cellv1.GetMachineRequest{Id: d.machineFilter})
		if err != nil {
			return 0, fmt.Errorf("read machine %s: %w", d.machineFilter, err)
		}
		d.fleet.replaceView(d.fleet.machines[d.machineFilter], resp.GetTasks(), resp.GetMachine().GetModRevision())
		d.markSynced()
		return 0, nil
	}
	stream, err := d.state.Snapshot(ctx, &cellv1.SnapshotRequest{})
	if err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	var (
		rev   uint64
		tasks []*cellv1.Task
		jobs  = make(map[string]*cellv1.Job)
		used  = make(map[string]bool)
	)
	for first := true; ; first = false {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return 0, errors.New("snapshot: stream ended before its last chunk")
		}
		if err != nil {
			return 0, fmt.Errorf("snapshot: %w", err)
		}
		if !cellclient.SameCell(d.cell, chunk.GetCell()) {
			return 0, fmt.Errorf("snapshot: %w: %s", errCellChanged, cellclient.Describe(chunk.GetCell()))
		}
		if first {
			rev = chunk.GetRevision()
		}
		for _, t := range chunk.GetTasks() {
			if _, ours := d.fleet.machines[t.GetMachineId()]; ours && holdsOn(t, t.GetMachineId()) {
				tasks = append(tasks, t)
				used[t.GetJobId()] = true
			}
		}
		for _, j := range chunk.GetJobs() {
			jobs[j.GetId()] = j
		}
		if chunk.GetLast() {
			break
		}
	}
	keep := make([]*cellv1.Job, 0, len(used))
	for id := range used {
		if j := jobs[id]; j != nil {
			keep = append(keep, j)
		}
	}
	d.fleet.replaceAll(tasks, keep, rev, time.Now())
	d.markSynced()
	return rev, nil
}

func (d *driver) markSynced() {
	d.sessions.Add(1)
	d.syncedOnce.Do(func() { close(d.synced) })
}

// watch follows the change stream from start until it breaks.
func (d *driver) watch(ctx context.Context, start uint64) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := d.state.Watch(ctx, &cellv1.WatchRequest{
		StartRevision:      start,
		ProgressIntervalMs: watchProgressMillis,
		MachineId:          d.machineFilter,
	})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	received := make(chan struct{}, 1)
	go d.watchdog(ctx, received, cancel)
	var whole cellclient.Assembler
	for {
		resp, err := stream.Recv()
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errWatchDead) {
				return cause
			}
			return fmt.Errorf("watch: %w", err)
		}
		select {
		case received <- struct{}{}:
		default:
		}
		if c := resp.GetCompactRevision(); c != 0 {
			return errCompacted{compactRevision: c}
		}
		if !cellclient.SameCell(d.cell, resp.GetCell()) {
			return fmt.Errorf("watch: %w: %s, registered with %s", errCellChanged, cellclient.Describe(resp.GetCell()), cellclient.Describe(d.cell))
		}
		if resp, err = whole.Add(resp); err != nil {
			return err
		}
		if resp == nil {
			continue // more fragments of this revision follow
		}
		if down := d.fleet.applyChanges(resp.GetChanges(), resp.GetRevision(), time.Now()); len(down) > 0 {
			// The server marks a machine up again when its heartbeats
			// resume; its lost tasks are stopped here by the reconcile.
			d.log.Warn("the server marked machines of this agent down: it missed their heartbeats", "machines", len(down), "first", down[0])
		}
	}
}

var errWatchDead = errors.New("watch: silent stream and the server does not answer")

// watchdog ends a watch whose connection died without an error (a
// half-open TCP connection after a partition never errors by itself).
// After d.watchSilence without a message it asks the server a cheap question
// on the same connection; no answer within d.watchProbeTimeout ends the
// watch. Any answer, even an error status, proves the server is there: a
// filtered watch may rightly stay silent while the cell is busy elsewhere.
func (d *driver) watchdog(ctx context.Context, received <-chan struct{}, cancel context.CancelCauseFunc) {
	probe := d.machineFilter
	if probe == "" && len(d.fleet.order) > 0 {
		probe = d.fleet.order[0].id
	}
	timer := time.NewTimer(d.watchSilence)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-received:
		case <-timer.C:
			pctx, pcancel := context.WithTimeout(ctx, d.watchProbeTimeout)
			_, err := d.machines.GetMachine(pctx, &cellv1.GetMachineRequest{Id: probe})
			pcancel()
			if c := status.Code(err); c == codes.Unavailable || c == codes.DeadlineExceeded {
				cancel(errWatchDead)
				return
			}
		}
		timer.Reset(d.watchSilence) // Go 1.23+ timers: no stale tick after Reset
	}
}

// syncLoop reconciles dirty machines as they change, and every machine
// once per syncEvery (retries and timeouts), and sends what it decided.
func (d *driver) syncLoop(ctx context.Context) {
	ticker := time.NewTicker(d.syncEvery)
	defer ticker.Stop()
	for {
		all := false
		select {
		case <-ctx.Done():
			return
		case <-d.fleet.kick:
		case <-ticker.C:
			all = true
		}
		w := d.fleet.sync(time.Now(), all)
		for _, b := range w.reports {
			d.send(ctx, b)
		}
		for _, id := range w.fetches {
			d.fetchJob(ctx, id)
		}
	}
}

// send reports one batch of task states in the background.
func (d *driver) send(ctx context.Context, b reportBatch) {
	d.inBackground(ctx, func(rctx context.Context) {
		resp, err := d.agent.ReportTaskStates(rctx, &cellv1.ReportTaskStatesRequest{MachineId: b.m.id, Updates: b.updates})
		d.fleet.reported(b, resp, err, time.Now())
	}, func(err error) { d.fleet.reported(b, nil, err, time.Now()) })
}

// fetchJob reads a job's template in the background.
func (d *driver) fetchJob(ctx context.Context, id string) {
	d.inBackground(ctx, func(rctx context.Context) {
		resp, err := d.jobs.GetJob(rctx, &cellv1.GetJobRequest{IdOrName: id})
		d.fleet.jobFetchedAt(id, resp.GetJob().GetSpec().GetTask(), resp.GetJob().GetTemplateVersion(), err, time.Now())
	}, func(err error) { d.fleet.jobFetched(id, nil, err, time.Now()) })
}

// inBackground runs call on a goroutine of its own once an RPC slot is
// free, with a context bounded by reportTimeout; if ctx ends first, gaveUp
// gets its error instead. The goroutine is counted in d.inflight.
func (d *driver) inBackground(ctx context.Context, call func(context.Context), gaveUp func(error)) {
	d.inflight.Add(1)
	go func() {
		defer d.inflight.Done()
		select {
		case d.rpcSlots <- struct{}{}:
		case <-ctx.Done():
			gaveUp(ctx.Err())
			return
		}
		defer func() { <-d.rpcSlots }()
		rctx, cancel := context.WithTimeout(ctx, reportTimeout)
		defer cancel()
		call(rctx)
	}()
}
