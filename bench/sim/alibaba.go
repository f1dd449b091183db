package sim

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/omegacell/omegacell/txn"
)

// AlibabaOptions says how to read the Alibaba GPU cluster trace 2023
// (clusterdata/cluster-trace-gpu-v2023): one openb_node_list*.csv and one
// or more openb_pod_list*.csv, CSV with a header row, plain or gzipped.
type AlibabaOptions struct {
	Nodes []string
	Pods  []string
	// Horizon, if positive, drops pods created after it (seconds).
	Horizon float64
	// AllPods keeps pods that were deleted before they were ever
	// scheduled (FGD's protocol places every pod of the list).
	AllPods bool
}

var (
	alibabaNodeColumns = []string{"sn", "cpu_milli", "memory_mib", "gpu", "model"}
	alibabaPodColumns  = []string{"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos",
		"pod_phase", "creation_time", "deletion_time", "scheduled_time"}
)

// ReadAlibabaTrace reads the Alibaba GPU trace into a replayable source.
//
// Every node is a machine from time zero, labelled gpu.model=<model> if it
// has GPUs. Every pod is a one-task job arriving at its creation_time
// (seconds), requesting cpu_milli, memory_mib and num_gpu × gpu_milli
// milli-GPU (gpu_milli is the share of each GPU; a multi-GPU pod asking for
// less than whole GPUs is rounded up to whole ones, which is the only shape
// txn accepts), constrained to the models in gpu_spec ("A|B") if any. It
// runs from placement for deletion_time − scheduled_time; a pod still
// running at the end of the trace runs to the end of the simulation; a pod
// deleted without ever being scheduled never ran and is left out. Pods
// with GPUs go to the gpu scheduler; others to the service scheduler if
// their qos is LS (latency-sensitive) or Guaranteed, otherwise to batch.
func ReadAlibabaTrace(opts AlibabaOptions) (*Trace, error) {
	t := &Trace{name: "alibaba-gpu-2023", Skipped: map[string]int{}}
	nodes, err := traceFiles(opts.Nodes)
	if err != nil {
		return nil, fmt.Errorf("node list: %w", err)
	}
	for _, path := range nodes {
		if err := t.readAlibabaFile(path, alibabaNodeColumns, t.alibabaNode); err != nil {
			return nil, err
		}
	}
	if len(t.machines) == 0 {
		return nil, fmt.Errorf("alibaba trace: no nodes in %v", opts.Nodes)
	}
	pods, err := traceFiles(opts.Pods)
	if err != nil {
		return nil, fmt.Errorf("pod list: %w", err)
	}
	for _, path := range pods {
		err := t.readAlibabaFile(path, alibabaPodColumns, func(c *csvFile) error { return t.alibabaPod(c, opts) })
		if err != nil {
			return nil, err
		}
	}
	sortItems(t.items)
	return t, nil
}

// readAlibabaFile checks the header row and hands every other row to row.
func (t *Trace) readAlibabaFile(path string, columns []string, row func(*csvFile) error) error {
	c, err := openCSV(path, columns)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.next(); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("trace %s: empty, want a header row %v", c.name, columns)
		}
		return err
	}
	for i, want := range columns {
		if got := strings.TrimSpace(strings.TrimPrefix(c.str(i), "\ufeff")); got != want {
			return c.errAt(i, "header is %q, want %q", got, want)
		}
	}
	for {
		if err := c.next(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := row(c); err != nil {
			return err
		}
	}
}

func (t *Trace) alibabaNode(c *csvFile) error {
	name := c.str(0)
	if name == "" {
		return c.errAt(0, "is empty")
	}
	cpu, _, err := c.int(1, false)
	if err != nil {
		return err
	}
	mem, _, err := c.int(2, false)
	if err != nil {
		return err
	}
	gpus, _, err := c.int(3, false)
	if err != nil {
		return err
	}
	capacity := txn.Resources{CPUMilli: cpu, MemoryBytes: mem << 20, GPUMilli: gpus * txn.MilliPerGPU}
	switch {
	case cpu <= 0:
		return c.errAt(1, "%d must be positive", cpu)
	case mem <= 0:
		return c.errAt(2, "%d must be positive", mem)
	case gpus < 0:
		return c.errAt(3, "%d is negative", gpus)
	}
	var labels map[string]string
	if model := c.str(4); gpus > 0 && model != "" {
		labels = map[string]string{"gpu.model": model}
	}
	t.machines = append(t.machines, txn.NewMachine(name, labels, capacity))
	return nil
}

func (t *Trace) alibabaPod(c *csvFile, opts AlibabaOptions) error {
	name := c.str(0)
	if name == "" {
		return c.errAt(0, "is empty")
	}
	var v [4]int64
	for k, col := range []int{1, 2, 3, 4} {
		x, _, err := c.int(col, false)
		if err != nil {
			return err
		}
		if x < 0 {
			return c.errAt(col, "%d is negative", x)
		}
		v[k] = x
	}
	cpu, mem, numGPU, gpuMilli := v[0], v[1], v[2], v[3]
	if gpuMilli > txn.MilliPerGPU {
		return c.errAt(4, "%d exceeds one GPU (1000)", gpuMilli)
	}
	created, _, err := c.int(8, false)
	if err != nil {
		return err
	}
	deleted, hasDeleted, err := c.int(9, true)
	if err != nil {
		return err
	}
	scheduled, hasScheduled, err := c.int(10, true)
	if err != nil {
		return err
	}
	switch {
	case created < 0:
		return c.errAt(8, "%d is negative", created)
	case hasScheduled && scheduled < created:
		return c.errAt(10, "%d is before creation_time %d", scheduled, created)
	case hasDeleted && hasScheduled && deleted < scheduled:
		return c.errAt(9, "%d is before scheduled_time %d", deleted, scheduled)
	}
	if opts.Horizon > 0 && float64(created) > opts.Horizon {
		t.Skipped["pod created after the horizon"]++
		return nil
	}
	if hasDeleted && !hasScheduled && !opts.AllPods {
		t.Skipped["pod deleted before it was scheduled"]++
		return nil
	}
	req := txn.Resources{CPUMilli: cpu, MemoryBytes: mem << 20}
	if numGPU > 0 && gpuMilli == 0 {
		gpuMilli = txn.MilliPerGPU
	}
	switch {
	case numGPU == 1:
		req.GPUMilli = gpuMilli
	case numGPU > 1:
		if gpuMilli < txn.MilliPerGPU {
			t.Skipped["multi-GPU pod share rounded up to whole GPUs"]++
		}
		req.GPUMilli = numGPU * txn.MilliPerGPU
	}
	if err := txn.ValidateRequest(req); err != nil {
		return c.errAt(1, "the pod's request is invalid: %v", err)
	}
	dur := -1.0
	if hasDeleted {
		dur = float64(deleted - scheduled)
	}
	spec := &JobSpec{ID: name, Tasks: 1, Resources: req, Duration: dur}
	qos := c.str(6)
	switch {
	case req.GPUMilli > 0:
		spec.Type, spec.Kind = KindGPU, KindGPU
	case qos == "LS" || qos == "Guaranteed":
		spec.Type, spec.Kind = KindService, KindService
	default:
		spec.Type, spec.Kind = KindBatch, KindBatch
	}
	switch qos {
	case "LS", "Guaranteed":
		spec.Priority = txn.PriorityProduction
	case "BE":
		spec.Priority = txn.PriorityBestEffort
	default:
		spec.Priority = txn.PriorityBatch
	}
	if models := c.str(5); models != "" && req.GPUMilli > 0 {
		spec.Constraints = []txn.Constraint{{Key: "gpu.model", Op: txn.OpIn, Values: strings.Split(models, "|")}}
	}
	t.items = append(t.items, Item{At: float64(created), Job: spec})
	return nil
}
