package cellstate

import (
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// Rolling updates (issue 13): the rollout controller lives in the store.
//
// Why here, and not in a scheduler or a separate process (as Nomad's
// deployment watcher lives in its servers): a rollout decides from the
// same facts the commit loop owns (each replica's version, state and
// readiness) and changes them (a replica replaced goes back to pending
// with the new template; a surplus one is killed). Deciding inside the
// commit loop makes every step atomic with the state it saw: two waves
// can never overlap, a restart of the server resumes exactly where the
// durable state says (the rollout is a field of the job, each replica's
// version a field of its task), and no second writer races the schedulers
// for the same tasks. The schedulers stay what Omega makes them: they
// place pending tasks, whatever put them there.
//
// It is driven by state changes: after every operation that touched a job
// with a rollout in progress (a replica placed, started, ready, exited),
// the loop re-plans that job (driveRollouts). Time alone matters for two
// things, min_healthy_time and healthy_deadline, so a clock (rolloutLoop)
// sends a tick operation every rolloutTick while some rollout runs, and
// nothing otherwise. Each re-plan costs O(slots of that job).
//
// The plan itself (planReplicas) is a pure function of the replicas'
// facts and the strategy, like a Kubernetes Deployment's rolling update:
// new replicas may exceed count by max_surge, healthy replicas may fall
// below count by at most max_unavailable; old replicas that are not
// healthy are replaced first, then healthy ones, highest index first.

// Rollout defaults: those of a Kubernetes Deployment (25% / 25%), and its
// progress deadline (10 min) shortened to Nomad's healthy_deadline (5 min).
const (
	defaultMaxSurgePercent       = 25
	defaultMaxUnavailablePercent = 25
	defaultHealthyDeadline       = 5 * time.Minute
	// A system job replaces one task at a time (a DaemonSet's default).
	defaultSystemMaxUnavailable = 1
	// rolloutTick is how often the rollout clock looks at deadlines.
	rolloutTick = 200 * time.Millisecond
	// A replica that failed crashLoopFailures times in a row without
	// being ready since is crash-looping; one ready for crashLoopReset
	// before it failed starts counting again (Kubernetes resets its
	// back-off after 10 min).
	crashLoopFailures = 3
	crashLoopReset    = 10 * time.Minute
)

// strategy is an UpdateStrategy resolved against a count.
type strategy struct {
	surge, unavailable uint32
	minHealthy         int64 // ns
	deadline           int64 // ns
	autoRevert         bool
}

// resolveStrategy applies the defaults and rounds percentages as a
// Deployment does (surge up, unavailable down). Both zero would never
// progress, so unavailable is then 1 (Kubernetes refuses that spec;
// accepting it and progressing one replica at a time is kinder).
func resolveStrategy(u *cellv1.UpdateStrategy, count uint32) strategy {
	st := strategy{
		surge:       resolveIntOrPercent(u.GetMaxSurge(), count, defaultMaxSurgePercent, true),
		unavailable: resolveIntOrPercent(u.GetMaxUnavailable(), count, defaultMaxUnavailablePercent, false),
		minHealthy:  u.GetMinHealthyTimeMs() * int64(time.Millisecond),
		deadline:    u.GetHealthyDeadlineMs() * int64(time.Millisecond),
		autoRevert:  u.GetAutoRevert(),
	}
	if st.deadline == 0 {
		st.deadline = int64(defaultHealthyDeadline)
	}
	if st.surge == 0 && st.unavailable == 0 {
		st.unavailable = 1
	}
	if room := uint32(limits.MaxTasksPerJob) - min(count, limits.MaxTasksPerJob); st.surge > room {
		st.surge = room
	}
	return st
}

// resolveJobStrategy resolves a job's strategy against count replicas. A
// system job (one task per machine, like a DaemonSet's RollingUpdate)
// never surges, and replaces maxUnavailable tasks at a time, default 1.
func resolveJobStrategy(spec *cellv1.JobSpec, count uint32) strategy {
	u := spec.GetUpdate()
	if isSystemSpec(spec) {
		if u == nil {
			u = &cellv1.UpdateStrategy{}
		} else {
			u = proto.Clone(u).(*cellv1.UpdateStrategy)
		}
		u.MaxSurge = &cellv1.IntOrPercent{}
		if u.MaxUnavailable == nil {
			u.MaxUnavailable = &cellv1.IntOrPercent{Value: defaultSystemMaxUnavailable}
		}
	}
	return resolveStrategy(u, count)
}

func isSystemSpec(spec *cellv1.JobSpec) bool { return spec.GetKind() == cellv1.JobKind_JOB_KIND_SYSTEM }

func resolveIntOrPercent(v *cellv1.IntOrPercent, count, defPercent uint32, roundUp bool) uint32 {
	if v == nil {
		v = &cellv1.IntOrPercent{Value: defPercent, Percent: true}
	}
	if !v.GetPercent() {
		return v.GetValue()
	}
	n := uint64(count) * uint64(v.GetValue())
	if roundUp {
		return uint32((n + 99) / 100)
	}
	return uint32(n / 100)
}

// slotView is what the planner knows of one task slot.
type slotView struct {
	index   uint32
	retired bool // a killed slot of a live job: free for a new replica
	current bool // runs, or will run, the target template version
	healthy bool // running, ready (a current one: for min_healthy_time)
}

// replicaPlan is what to do to the slots.
type replicaPlan struct {
	replace []uint32 // old replicas given the new version in place (back to pending)
	retire  []uint32 // replicas stopped: surplus after a scale down or a surge
	revive  []uint32 // retired slots given a new replica
	add     uint32   // new slots appended after the last
}

func (p replicaPlan) empty() bool {
	return len(p.replace)+len(p.retire)+len(p.revive) == 0 && p.add == 0
}

// planReplicas decides one step towards count current, healthy replicas.
// rolling says a rollout is in progress: old replicas are then replaced
// within st's surge and unavailability; otherwise every live replica
// counts as current and only the count is kept (scale up and down, the
// highest indexes stopped first).
func planReplicas(slots []slotView, count uint32, st strategy, rolling bool) replicaPlan {
	var p replicaPlan
	var cur, old []slotView
	var free []uint32
	for _, s := range slots {
		switch {
		case s.retired:
			free = append(free, s.index)
		case s.current || !rolling:
			cur = append(cur, s)
		default:
			old = append(old, s)
		}
	}
	live := len(cur) + len(old)
	// Surplus current replicas (a scale down): the highest indexes go.
	if len(cur) > int(count) {
		sort.Slice(cur, func(a, b int) bool { return cur[a].index > cur[b].index })
		for _, s := range cur[:len(cur)-int(count)] {
			p.retire = append(p.retire, s.index)
		}
		live -= len(cur) - int(count)
		cur = cur[len(cur)-int(count):]
	}
	newCount := len(cur)
	// New replicas, within the surge.
	maxLive := int(count)
	if rolling {
		maxLive += int(st.surge)
	}
	create := min(int(count)-newCount, maxLive-live)
	sort.Slice(free, func(a, b int) bool { return free[a] < free[b] })
	for ; create > 0; create-- {
		if len(free) > 0 {
			p.revive = append(p.revive, free[0])
			free = free[1:]
		} else {
			p.add++
		}
		newCount++
		live++
	}
	if len(old) == 0 {
		return p
	}
	// Old replicas go within the availability budget: unhealthy ones
	// cost nothing, each healthy one costs one.
	healthy := 0
	for _, s := range cur {
		if s.healthy {
			healthy++
		}
	}
	for _, s := range old {
		if s.healthy {
			healthy++
		}
	}
	minAvailable := 0
	if count > st.unavailable {
		minAvailable = int(count - st.unavailable)
	}
	budget := healthy - minAvailable
	sort.Slice(old, func(a, b int) bool {
		if old[a].healthy != old[b].healthy {
			return !old[a].healthy
		}
		return old[a].index > old[b].index
	})
	for _, s := range old {
		if s.healthy {
			if budget <= 0 {
				break
			}
			budget--
		}
		if newCount < int(count) {
			p.replace = append(p.replace, s.index)
			newCount++
		} else {
			p.retire = append(p.retire, s.index)
		}
	}
	return p
}
