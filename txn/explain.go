package txn

import (
	"fmt"
	"slices"
	"strings"
)

// Explaining why a task is pending, as Kubernetes' scheduler does ("0/21
// nodes are available: 19 node(s) didn't match node selector, 2
// Insufficient cpu"): every machine of the cell is put through the same
// filters placement applies, in a fixed order, and counted under the first
// one that refuses it. Two tallies are kept: "now" (the machine as it is:
// its state, free resources, the job's tasks already there) and "ever"
// (the machine empty and ready: its labels and capacity alone), so a
// reason can say whether waiting can help at all.
//
// The filters are those of [Fits] and of Validate's admission checks; no
// scoring is involved, so every policy (and the store, for a warning at
// submit) explains with the same words.

// Filter is one reason a machine cannot host a task.
type Filter uint8

const (
	FilterNotReady      Filter = iota // draining or down (now only)
	FilterConstraint                  // a label constraint term (counted per term)
	FilterSpreadLabel                 // lacks the label spread over
	FilterMaxPerMachine               // already runs max per machine of the job (now only)
	FilterGPU                         // not enough (free) GPU devices
	FilterCPU
	FilterMemory
	FilterDisk
	numFilters
)

// Tally counts machines by the first filter that refused them.
type Tally struct {
	Machines int // examined
	Fit      int // refused by no filter
	Refused  [numFilters]int
	// ByTerm counts refusals per constraint term (FilterConstraint).
	ByTerm []int
	// Best is, per resource filter, the most any refused machine had
	// (free now, capacity ever): what the message quotes.
	Best [numFilters]int64
	// draining and down split FilterNotReady.
	draining, down int
}

// maxShownValues bounds the label values quoted for a constraint that
// refused machines ("cell has: H100, L4"), and termValues the values kept.
const (
	maxShownValues = 4
	maxKeptValues  = 16
)

// Explainer counts machines for one task shape; feed it every machine of
// the cell with [Explainer.Add], then read [Explainer.Reason]. The zero
// value is not usable; call [NewExplainer].
type Explainer struct {
	task      *Task
	spreadKey string
	Now, Ever Tally
	// values seen on refused machines for each term's key (bounded).
	values [][]string
	// hasKey counts refused machines that have each term's key at all.
	hasKey []int
}

// NewExplainer explains placements of tasks shaped like t (resources,
// constraints, max per machine); spreadKey, if set, is the label a policy
// spreads over (machines without it are never chosen).
func NewExplainer(t *Task, spreadKey string) *Explainer {
	n := len(t.Constraints)
	return &Explainer{
		task: t, spreadKey: spreadKey,
		Now:    Tally{ByTerm: make([]int, n)},
		Ever:   Tally{ByTerm: make([]int, n)},
		values: make([][]string, n), hasKey: make([]int, n),
	}
}

// Add counts machine m, which already runs jobTasksOn tasks of the job.
func (e *Explainer) Add(m *Machine, jobTasksOn uint32) {
	if m == nil {
		return
	}
	e.Now.Machines++
	e.Ever.Machines++
	t := e.task
	if i := e.unmetTerm(m); i >= 0 {
		e.Now.refuse(FilterConstraint, 0)
		e.Ever.refuse(FilterConstraint, 0)
		e.Now.ByTerm[i]++
		e.Ever.ByTerm[i]++
		e.noteValue(i, m)
		return
	}
	if e.spreadKey != "" {
		if _, ok := m.Labels[e.spreadKey]; !ok {
			e.Now.refuse(FilterSpreadLabel, 0)
			e.Ever.refuse(FilterSpreadLabel, 0)
			return
		}
	}
	// Ever: the machine empty and ready.
	if f, best := resourceFilter(m.Capacity, m.Devices(), t.Resources); f != numFilters {
		e.Ever.refuse(f, best)
	} else {
		e.Ever.Fit++
	}
	// Now: state, max per machine, free resources.
	switch {
	case m.State != MachineReady:
		e.Now.refuse(FilterNotReady, 0)
		if m.State == MachineDraining {
			e.Now.draining++
		} else {
			e.Now.down++
		}
		return
	case t.MaxPerMachine > 0 && jobTasksOn >= t.MaxPerMachine:
		e.Now.refuse(FilterMaxPerMachine, 0)
		return
	}
	f, best := resourceFilter(m.Free(), m.Devices(), t.Resources)
	if f == numFilters && t.Resources.GPUMilli > 0 {
		if _, ok := AssignDevices(m, t.Resources.GPUMilli); !ok {
			f, best = FilterGPU, int64(wholeFree(m))*MilliPerGPU
		}
	}
	if f != numFilters {
		e.Now.refuse(f, best)
		return
	}
	e.Now.Fit++
}

// resourceFilter checks r against amounts (free or capacity) of a machine
// with devices GPU devices; which devices are free is checked apart.
func resourceFilter(amounts Resources, devices int, r Resources) (Filter, int64) {
	switch {
	case r.GPUMilli >= MilliPerGPU && devices < int(r.GPUMilli/MilliPerGPU):
		return FilterGPU, int64(devices) * MilliPerGPU
	case r.GPUMilli > 0 && devices == 0:
		return FilterGPU, 0
	case r.GPUMilli > amounts.GPUMilli:
		return FilterGPU, amounts.GPUMilli
	case r.CPUMilli > amounts.CPUMilli:
		return FilterCPU, amounts.CPUMilli
	case r.MemoryBytes > amounts.MemoryBytes:
		return FilterMemory, amounts.MemoryBytes
	case r.DiskBytes > amounts.DiskBytes:
		return FilterDisk, amounts.DiskBytes
	}
	return numFilters, 0
}

func wholeFree(m *Machine) int {
	n := 0
	for _, u := range m.DeviceUsed {
		if u == 0 {
			n++
		}
	}
	return n
}

func (t *Tally) refuse(f Filter, amount int64) {
	t.Refused[f]++
	t.Best[f] = max(t.Best[f], amount)
}

func (e *Explainer) unmetTerm(m *Machine) int {
	for i, c := range e.task.Constraints {
		if !c.Matches(m.Labels) {
			return i
		}
	}
	return -1
}

func (e *Explainer) noteValue(i int, m *Machine) {
	v, ok := m.Labels[e.task.Constraints[i].Key]
	if !ok {
		return
	}
	e.hasKey[i]++
	if len(e.values[i]) < maxKeptValues && !slices.Contains(e.values[i], v) {
		e.values[i] = append(e.values[i], v)
	}
}

// NeverFits reports whether no machine added could host the task even
// empty and ready: waiting cannot help (machines may still join).
func (e *Explainer) NeverFits() bool { return e.Ever.Fit == 0 }

// Reason is the pending reason: when no machine could ever host the task,
// what stops each machine even empty; otherwise why none fits now.
//
//	0/21 machines fit now: 19 didn't match zone = eu, 2 insufficient cpu (need 4000m, at most 2000m free); 2 would fit when empty
//	no machine can ever fit: 0/20 machines fit even when empty: 20 have fewer than 16 GPUs (at most 8)
func (e *Explainer) Reason() string {
	if e.Ever.Machines == 0 {
		return "no machine in the cell"
	}
	if e.NeverFits() {
		return "no machine can ever fit: " + e.Explain(true)
	}
	if e.Ever.Fit > e.Now.Fit {
		return fmt.Sprintf("%s; %d would fit when empty", e.Explain(false), e.Ever.Fit)
	}
	return e.Explain(false)
}

// Explain renders one tally: ever (machines empty) or now.
func (e *Explainer) Explain(ever bool) string {
	t, when := &e.Now, "now"
	if ever {
		t, when = &e.Ever, "even when empty"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d machines fit %s", t.Fit, t.Machines, when)
	parts := e.parts(t, ever)
	if len(parts) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(parts, ", "))
	}
	return b.String()
}

func (e *Explainer) parts(t *Tally, ever bool) []string {
	type part struct {
		n int
		s string
	}
	var ps []part
	add := func(n int, s string) {
		if n > 0 {
			ps = append(ps, part{n, fmt.Sprintf("%d %s", n, s)})
		}
	}
	add(t.draining, "draining")
	add(t.down, "down")
	for i, n := range t.ByTerm {
		add(n, "didn't match "+e.termString(i))
	}
	add(t.Refused[FilterSpreadLabel], "lack the spread label "+e.spreadKey)
	add(t.Refused[FilterMaxPerMachine], fmt.Sprintf("already run %d of the job's tasks (maxPerMachine)", e.task.MaxPerMachine))
	r := e.task.Resources
	have := "at most %s free"
	if ever {
		have = "at most %s"
	}
	if n := t.Refused[FilterGPU]; n > 0 {
		switch g := r.GPUMilli; {
		case t.Best[FilterGPU] == 0 && ever:
			add(n, "have no GPU")
		case g >= MilliPerGPU && ever:
			add(n, fmt.Sprintf("have fewer than %d GPUs (at most %d)", g/MilliPerGPU, t.Best[FilterGPU]/MilliPerGPU))
		case g >= MilliPerGPU:
			add(n, fmt.Sprintf("have fewer than %d free GPUs (at most %d)", g/MilliPerGPU, t.Best[FilterGPU]/MilliPerGPU))
		case ever:
			add(n, "have no GPU")
		default:
			add(n, fmt.Sprintf("have no GPU with %dm free", g))
		}
	}
	short := func(f Filter, name string, need int64, unit func(int64) string) {
		what := "insufficient " + name
		if ever {
			what = "too little " + name
		}
		add(t.Refused[f], fmt.Sprintf("%s (need %s, "+have+")", what, unit(need), unit(t.Best[f])))
	}
	short(FilterCPU, "cpu", r.CPUMilli, func(v int64) string { return fmt.Sprintf("%dm", v) })
	short(FilterMemory, "memory", r.MemoryBytes, FormatBytes)
	short(FilterDisk, "disk", r.DiskBytes, FormatBytes)
	slices.SortStableFunc(ps, func(a, b part) int { return b.n - a.n })
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.s
	}
	return out
}

// termString renders term i with the values the refused machines have
// for its key, so "gpu.model = A100" says what the cell offers instead.
func (e *Explainer) termString(i int) string {
	c := e.task.Constraints[i]
	s := c.String()
	if c.Op != OpIn {
		return s
	}
	vals := slices.Clone(e.values[i])
	if len(vals) == 0 {
		return fmt.Sprintf("%s (no machine has label %s)", s, c.Key)
	}
	slices.Sort(vals)
	more := ""
	if len(vals) > maxShownValues {
		more = ", ..."
		vals = vals[:maxShownValues]
	}
	return fmt.Sprintf("%s (they have %s: %s%s)", s, c.Key, strings.Join(vals, ", "), more)
}

// FormatBytes writes a byte count in the largest binary unit that keeps
// it whole to one decimal: 512Mi, 1.5Gi, 16Gi.
func FormatBytes(v int64) string {
	units := []string{"", "Ki", "Mi", "Gi", "Ti", "Pi"}
	f, u := float64(v), 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d%s", int64(f), units[u])
	}
	return fmt.Sprintf("%.1f%s", f, units[u])
}
