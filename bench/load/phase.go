package load

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/schollz/progressbar/v3"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// runPhase submits a phase's jobs and waits until every task is placed,
// sampling the placement rate; it returns the phase's figures.
func (r *rig) runPhase(ctx context.Context, ph *phasePlan) (*PhaseReport, error) {
	track := newPhaseTrack(ph.name, ph.measure)
	jobs := make([]*jobTrack, len(ph.jobs))
	for i := range ph.jobs {
		jobs[i] = &jobTrack{phase: track, name: ph.jobs[i].spec(r.run, ph.name).Name, tasks: ph.jobs[i].tasks}
	}
	r.tracks = append(r.tracks, jobs...)

	var storeBefore, schedBefore metricSet
	if ph.measure {
		var err error
		if storeBefore, err = gather(ctx, r.storeM); err != nil {
			return nil, err
		}
		if schedBefore, err = r.settledSchedulerMetrics(ctx); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	start := time.Now()
	sub := &submission{}
	withComponent(ctx, compBench, func(ctx context.Context) {
		if ph.rate > 0 {
			go r.submitAtRate(ctx, ph, jobs, start, sub)
		} else {
			go r.submitBurst(ctx, ph, jobs, sub)
		}
	})
	samples, err := r.await(ctx, ph, track, sub, start)
	if err != nil {
		return nil, err
	}
	end := time.Now()
	rep := phaseReport(ph, track, samples, sub)
	if ph.measure {
		storeAfter, err := gather(ctx, r.storeM)
		if err != nil {
			return nil, err
		}
		schedAfter, err := r.settledSchedulerMetrics(ctx)
		if err != nil {
			return nil, err
		}
		rep.Store = storeFigures(storeBefore, storeAfter, end.Sub(start))
		// The schedulers' busy time runs until their last commit was
		// counted, which can be after the watch showed its placements.
		busyWall := time.Since(start)
		for _, in := range r.plan.schedulers {
			rep.Schedulers = append(rep.Schedulers, schedulerFigures(in, schedBefore, schedAfter, busyWall))
		}
	}
	return rep, nil
}

func (r *rig) schedulerMetrics(context.Context) ([]*dto.MetricFamily, error) {
	return r.schedM.Gather()
}

// settledSchedulerMetrics gathers the schedulers' metrics once no Commit
// call is in flight. The watch can show a placement before the scheduler
// that committed it has read the answer and counted the claims; a
// placement seen while commits_in_flight is 0 has been counted.
func (r *rig) settledSchedulerMetrics(ctx context.Context) (metricSet, error) {
	for {
		ms, err := gather(ctx, r.schedulerMetrics)
		if err != nil {
			return nil, err
		}
		if ms.sum("omegacell_scheduler_commits_in_flight", nil, "", "") == 0 {
			return ms, nil
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return nil, fmt.Errorf("schedulers still committing at the end of the phase: %w", context.Cause(ctx))
		}
	}
}

// submission is the state of a phase's submitters.
type submission struct {
	done   atomic.Bool
	err    atomic.Pointer[error]
	maxLag atomic.Int64 // ns a rate submission started after its due time
}

func (s *submission) fail(err error) { s.err.CompareAndSwap(nil, &err) }

// submit registers j with the observer (at submitted) and submits it.
func (r *rig) submit(ctx context.Context, ph *phasePlan, plan *jobPlan, j *jobTrack, submitted time.Time) error {
	j.submit = submitted
	r.obs.expect(j)
	t0 := time.Now()
	_, err := r.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: plan.spec(r.run, ph.name)})
	if err != nil {
		return fmt.Errorf("submit job %s: %w", j.name, err)
	}
	j.phase.mu.Lock()
	recordLatency(j.phase.submitRPC, time.Since(t0))
	j.phase.mu.Unlock()
	return nil
}

// submitBurst keeps Config.Submitters submissions in flight until every
// job of the phase is submitted.
func (r *rig) submitBurst(ctx context.Context, ph *phasePlan, jobs []*jobTrack, sub *submission) {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range r.cfg.Submitters {
		wg.Go(func() {
			for ctx.Err() == nil && sub.err.Load() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				if err := r.submit(ctx, ph, &ph.jobs[i], jobs[i], time.Now()); err != nil {
					sub.fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	sub.done.Store(true)
}

// maxInFlight bounds a rate phase's concurrent submissions; past it the
// dispatcher falls behind (and the lag is reported) rather than pile up
// goroutines.
const maxInFlight = 1024

// submitAtRate submits each job at its due time, open loop: a submission
// runs in its own goroutine, and its latencies count from the due time,
// so a slow cell cannot hide its delays by slowing the arrivals
// (coordinated omission).
func (r *rig) submitAtRate(ctx context.Context, ph *phasePlan, jobs []*jobTrack, start time.Time, sub *submission) {
	slots := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		sub.done.Store(true)
	}()
	for i := range jobs {
		due := start.Add(ph.jobs[i].offset)
		if wait := time.Until(due); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if lag := int64(time.Since(due)); lag > sub.maxLag.Load() {
			sub.maxLag.Store(lag)
		}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := r.submit(ctx, ph, &ph.jobs[i], jobs[i], due); err != nil {
				sub.fail(err)
			}
		})
	}
}

// sampleSeries are taken every Config.SampleInterval: placements per second,
// and the longest submit→placed latency of a placement in the interval.
type sampleSeries struct {
	rate    []float64
	worstMS []float64
}

// await waits until the phase's tasks are all placed, sampling every
// Config.SampleInterval (a partial last interval is not a sample) and
// drawing the progress bar.
func (r *rig) await(ctx context.Context, ph *phasePlan, track *phaseTrack, sub *submission, start time.Time) (sampleSeries, error) {
	bar := r.progressBar(ph)
	defer func() {
		if bar != nil {
			_ = bar.Finish()
		}
	}()
	sample := time.NewTicker(r.cfg.SampleInterval)
	defer sample.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	var samples sampleSeries
	last := int64(0)
	lastAt := start
	for {
		select {
		case now := <-sample.C:
			placed := track.placed.Load()
			samples.rate = append(samples.rate, float64(placed-last)/now.Sub(lastAt).Seconds())
			samples.worstMS = append(samples.worstMS, float64(track.worst.Swap(0))/1e6)
			last, lastAt = placed, now
		case <-poll.C:
		case <-ctx.Done():
			return samples, fmt.Errorf("%d of %d tasks placed (%d submitted) after %s: %w",
				track.placed.Load(), ph.tasks, track.expected.Load(), time.Since(start).Round(time.Millisecond), context.Cause(ctx))
		}
		if p := sub.err.Load(); p != nil {
			return samples, *p
		}
		if err := r.obs.Err(); err != nil {
			return samples, err
		}
		placed := track.placed.Load()
		if bar != nil {
			_ = bar.Set64(placed)
		}
		if sub.done.Load() && placed >= int64(ph.tasks) {
			return samples, nil
		}
	}
}

// progressBar draws on Config.Progress when that is a terminal.
func (r *rig) progressBar(ph *phasePlan) *progressbar.ProgressBar {
	f, ok := r.cfg.Progress.(*os.File)
	if !ok {
		return nil
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return progressbar.NewOptions64(int64(ph.tasks),
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(ph.name),
		progressbar.OptionSetItsString("tasks"),
		progressbar.OptionShowIts(),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}
