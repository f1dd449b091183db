package sim

import (
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

func googleTestOptions() GoogleOptions {
	o := DefaultGoogleOptions()
	o.MachineEvents = []string{"testdata/google/machine_events.csv"}
	o.TaskEvents = []string{"testdata/google/task_events-part-00000-of-00001.csv.gz"}
	return o
}

func TestReadGoogleTrace(t *testing.T) {
	tr, err := ReadGoogleTrace(googleTestOptions())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range tr.Machines() {
		ids = append(ids, m.ID+"="+m.Capacity.String())
	}
	wantMachines := []string{
		"g1=cpu=16000m mem=68719476736 disk=0 gpu=0m",
		"g2=cpu=16000m mem=34359738368 disk=0 gpu=0m",
		"g3=cpu=32000m mem=137438953472 disk=0 gpu=0m",
	}
	if !equalSlices(ids, wantMachines) {
		t.Errorf("machines %v, want %v (g4 has no capacity)", ids, wantMachines)
	}

	type row struct {
		at   float64
		what string
	}
	var got []row
	jobs := map[string]*JobSpec{}
	for it, ok := tr.Next(); ok; it, ok = tr.Next() {
		switch {
		case it.Machine != nil && it.Machine.Machine != nil:
			got = append(got, row{it.At, it.Machine.Machine.ID})
		case it.Machine != nil:
			got = append(got, row{it.At, it.Machine.ID})
		default:
			got = append(got, row{it.At, it.Job.ID})
			jobs[it.Job.ID] = it.Job
		}
	}
	want := []row{{0, "g100"}, {600, "g200"}, {1000, "g400"}, {3600, "g5"}, {7200, "g2"}, {10800, "g3"}}
	if len(got) != len(want) {
		t.Fatalf("items %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("item %d = %v, want %v", i, got[i], want[i])
		}
	}

	for _, tc := range []struct {
		id        string
		kind      string
		prefill   bool
		durations []float64
		cpu       int64
		maxPer    uint32
	}{
		{"g100", KindService, true, []float64{18000, -1}, 4000, 0},
		{"g200", KindBatch, false, []float64{599.5, 1200}, 2000, 1},
		{"g400", KindService, false, []float64{-1}, 8000, 0},
	} {
		j := jobs[tc.id]
		if j == nil {
			t.Errorf("job %s missing", tc.id)
			continue
		}
		if j.Kind != tc.kind || j.Prefill != tc.prefill || !equalSlices(j.TaskDurations, tc.durations) ||
			j.TaskResources[0].CPUMilli != tc.cpu || j.MaxPerMachine != tc.maxPer || j.Tasks != len(tc.durations) {
			t.Errorf("job %s = kind %s prefill %v durations %v cpu %d max/machine %d; want %s %v %v %d %d",
				tc.id, j.Kind, j.Prefill, j.TaskDurations, j.TaskResources[0].CPUMilli, j.MaxPerMachine,
				tc.kind, tc.prefill, tc.durations, tc.cpu, tc.maxPer)
		}
	}
	if tr.Skipped["task ended before it was scheduled"] != 1 || tr.Skipped["machine event without capacity"] != 1 {
		t.Errorf("skipped %v, want job 300's task and machine 4", tr.Skipped)
	}
}

// A directory stands for all its files, plain and gzipped alike.
func TestReadGoogleTraceFromDirectories(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/google/task_events-part-00000-of-00001.csv.gz", filepath.Join(dir, "tasks", "part-00000.csv.gz"))
	copyFile(t, "testdata/google/machine_events.csv", filepath.Join(dir, "machines", "part-00000.csv"))
	o := DefaultGoogleOptions()
	o.MachineEvents, o.TaskEvents = []string{filepath.Join(dir, "machines")}, []string{filepath.Join(dir, "tasks")}
	tr, err := ReadGoogleTrace(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Machines()) != 3 || tr.Jobs() != 3 {
		t.Errorf("got %d machines, %d jobs; want 3, 3", len(tr.Machines()), tr.Jobs())
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadAlibabaTrace(t *testing.T) {
	tr, err := ReadAlibabaTrace(AlibabaOptions{
		Nodes: []string{"testdata/alibaba/openb_node_list_gpu_node.csv"},
		Pods:  []string{"testdata/alibaba/openb_pod_list_default.csv"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ms := tr.Machines()
	if len(ms) != 4 || ms[1].Labels["gpu.model"] != "A100" || ms[1].Devices() != 8 || ms[2].Labels != nil {
		t.Fatalf("machines %+v: want 4, the second an A100 node with 8 devices, the third without GPU labels", ms)
	}
	jobs := map[string]*JobSpec{}
	for it, ok := tr.Next(); ok; it, ok = tr.Next() {
		jobs[it.Job.ID] = it.Job
	}
	for _, tc := range []struct {
		id       string
		kind     string
		gpu      int64
		duration float64
		models   string
	}{
		{"openb-pod-0001", KindGPU, 1000, -1, ""},
		{"openb-pod-0002", KindGPU, 500, 1190, "V100M16|V100M32"},
		{"openb-pod-0003", KindGPU, 4000, 7200, "A100"},
		{"openb-pod-0004", KindService, 0, -1, ""},
		{"openb-pod-0006", KindGPU, 250, -1, ""},
		{"openb-pod-0007", KindGPU, 2000, 3590, ""},
		{"openb-pod-0008", KindGPU, 500, 1990, "T4"},
	} {
		j := jobs[tc.id]
		if j == nil {
			t.Errorf("pod %s missing", tc.id)
			continue
		}
		var models string
		if len(j.Constraints) > 0 {
			models = strings.Join(j.Constraints[0].Values, "|")
		}
		if j.Kind != tc.kind || j.Resources.GPUMilli != tc.gpu || j.Duration != tc.duration || models != tc.models {
			t.Errorf("pod %s = kind %s gpu %d duration %v models %q; want %s %d %v %q", tc.id, j.Kind, j.Resources.GPUMilli, j.Duration, models, tc.kind, tc.gpu, tc.duration, tc.models)
		}
	}
	if _, ok := jobs["openb-pod-0005"]; ok || len(jobs) != 7 {
		t.Errorf("got %d pods; want 7, without pod 0005 (deleted before it was scheduled)", len(jobs))
	}
}

// Both traces replay through every architecture with the invariant
// checked, and the GPU trace reports GPU allocation and fragmentation.
func TestTracesReplay(t *testing.T) {
	for _, arch := range Archs() {
		t.Run(string(arch), func(t *testing.T) {
			g, err := ReadGoogleTrace(googleTestOptions())
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.Arch, cfg.Horizon = arch, 5*3600
			s, err := simulate(cfg, g, 1)
			if err != nil {
				t.Fatal(err)
			}
			r := s.result()
			if jobStats(t, r, KindBatch).Scheduled != 1 || jobStats(t, r, KindService).Scheduled != 1 {
				t.Errorf("google replay %+v: want job g200 (batch) and g400 (service) scheduled", r.JobTypes)
			}

			a, err := ReadAlibabaTrace(AlibabaOptions{
				Nodes: []string{"testdata/alibaba/openb_node_list_gpu_node.csv"},
				Pods:  []string{"testdata/alibaba/openb_pod_list_default.csv"},
			})
			if err != nil {
				t.Fatal(err)
			}
			cfg.Horizon = 3600
			s, err = simulate(cfg, a, 1)
			if err != nil {
				t.Fatal(err)
			}
			r = s.result()
			// Pod 0008 asks for a T4, the only one of which the gpu policy
			// gives to pod 0007 (two GPUs, any model: the T4 machine's GPUs
			// are fragments for the 4-GPU shape already seen, so FGD fills
			// them); 0008 waits until 0007 ends at 4,200 s or is abandoned.
			if gpu := jobStats(t, r, KindGPU); gpu.Scheduled < 5 || gpu.Scheduled+gpu.Abandoned+gpu.Unscheduled != gpu.Submitted {
				t.Errorf("alibaba replay: %d of %d GPU pods scheduled (%d abandoned, %d waiting), want at least 5, every one accounted for",
					gpu.Scheduled, gpu.Submitted, gpu.Abandoned, gpu.Unscheduled)
			}
			if r.Cell.GPUAllocation <= 0 || r.Cell.GPUStranded <= 0 {
				t.Errorf("alibaba replay: GPU allocation %v, stranded %v; want both positive", r.Cell.GPUAllocation, r.Cell.GPUStranded)
			}
		})
	}
}

// A machine that goes away loses its tasks; they go back to their
// scheduler and run elsewhere.
func TestRemovedMachineLosesItsTasks(t *testing.T) {
	m1 := txn.NewMachine("a", nil, txn.Resources{CPUMilli: 4000, MemoryBytes: 1 << 30})
	m2 := txn.NewMachine("b", nil, txn.Resources{CPUMilli: 4000, MemoryBytes: 1 << 30})
	job := &JobSpec{ID: "j", Type: KindService, Kind: KindService, Tasks: 2, Resources: txn.Resources{CPUMilli: 3000, MemoryBytes: 1 << 20}, Duration: -1}
	tr := &Trace{name: "t", machines: []*txn.Machine{m1, m2}, items: []Item{
		{At: 1, Job: job},
		{At: 100, Machine: &MachineEvent{Kind: MachineRemoved, ID: "a"}},
		{At: 200, Machine: &MachineEvent{Kind: MachineAdded, Machine: txn.NewMachine("c", nil, m1.Capacity)}},
	}}
	cfg := DefaultConfig()
	cfg.Horizon = 300
	s, err := simulate(cfg, tr, 1)
	if err != nil {
		t.Fatal(err)
	}
	j := s.cell.jobs["j"]
	on := map[string]bool{}
	for _, task := range j.tasks {
		if task.State != txn.TaskAssigned {
			t.Fatalf("task %s is %s, want assigned again", task.Key, task.State)
		}
		on[task.Machine] = true
	}
	if !on["b"] || !on["c"] || on["a"] {
		t.Errorf("tasks on %v, want b and c (a went down)", on)
	}
	if r := s.result(); jobStats(t, r, KindService).TasksLost != 1 {
		t.Errorf("tasks lost %d, want 1", jobStats(t, r, KindService).TasksLost)
	}
}

func TestMalformedTraceRowsNameFileLineAndColumn(t *testing.T) {
	const podHeader = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
	const nodeHeader = "sn,cpu_milli,memory_mib,gpu,model\n"
	const goodNode = nodeHeader + "n1,32000,65536,2,T4\n"
	const goodMachines = "0,1,0,p,0.5,0.5\n"
	for _, tc := range []struct {
		name string
		kind string // google-machines, google-tasks, alibaba-nodes, alibaba-pods
		file string
		body string
		gzip bool
		want string
	}{
		{"machine event type", "google-machines", "machine_events.csv", "0,1,0,p,0.5,0.5\n5,1,7,p,0.5,0.5\n", false, "machine_events.csv:2: column 3 (event type): 7 is not"},
		{"machine cpu not a number", "google-machines", "machine_events.csv", "0,1,0,p,half,0.5\n", false, "machine_events.csv:1: column 5 (CPUs): \"half\" is not a number"},
		{"machine fields", "google-machines", "machine_events.csv", "0,1,0,p,0.5\n", false, "machine_events.csv:1: 5 fields, want 6"},
		{"task index", "google-tasks", "part-00000.csv.gz", "0,,1,x,,0,u,0,1,0.1,0.1,0,0\n", true, "part-00000.csv.gz:1: column 4 (task index): \"x\" is not an integer"},
		{"task priority", "google-tasks", "part-00001.csv", "0,,1,0,,0,u,0,1,0.1,0.1,0,0\n0,,1,1,,0,u,0,12,0.1,0.1,0,0\n", false, "part-00001.csv:2: column 9 (priority): 12 is outside 0-11"},
		{"task cpu request", "google-tasks", "t.csv", "0,,1,0,,0,u,0,1,1.5,0.1,0,0\n", false, "t.csv:1: column 10 (CPU request): 1.5 is outside [0, 1]"},
		{"task restriction", "google-tasks", "t.csv", "0,,1,0,,0,u,0,1,0.1,0.1,0,2\n", false, "t.csv:1: column 13 (different-machines restriction): 2 is neither 0 nor 1"},
		{"task quote", "google-tasks", "t.csv", "0,,1,0,,0,\"u,0,1,0.1,0.1,0,0\n", false, "t.csv:1: character 30: extraneous or missing \" in quoted-field"},
		{"node header", "alibaba-nodes", "openb_node_list_x.csv", "sn,cpu,memory_mib,gpu,model\n", false, "openb_node_list_x.csv:1: column 2 (cpu_milli): header is \"cpu\", want \"cpu_milli\""},
		{"node gpus", "alibaba-nodes", "openb_node_list_x.csv", nodeHeader + "n1,32000,65536,-1,T4\n", false, "openb_node_list_x.csv:2: column 4 (gpu): -1 is negative"},
		{"pod gpu share", "alibaba-pods", "openb_pod_list_x.csv", podHeader + "p1,1000,1000,1,1500,,LS,Running,0,,0\n", false, "openb_pod_list_x.csv:2: column 5 (gpu_milli): 1500 exceeds one GPU"},
		{"pod times", "alibaba-pods", "openb_pod_list_x.csv", podHeader + "p1,1000,1000,0,0,,LS,Running,10,,5\n", false, "openb_pod_list_x.csv:2: column 11 (scheduled_time): 5 is before creation_time 10"},
		{"pod creation", "alibaba-pods", "openb_pod_list_x.csv", podHeader + "p1,1000,1000,0,0,,LS,Running,,,\n", false, "openb_pod_list_x.csv:2: column 9 (creation_time): is empty"},
		{"pod fields", "alibaba-pods", "openb_pod_list_x.csv", podHeader + "p1,1000\n", false, "openb_pod_list_x.csv:2: 2 fields, want 11"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.file)
			writeTraceFile(t, path, tc.body, tc.gzip)
			var err error
			switch tc.kind {
			case "google-machines", "google-tasks":
				o := DefaultGoogleOptions()
				o.MachineEvents, o.TaskEvents = []string{path}, []string{path}
				if tc.kind == "google-tasks" {
					good := filepath.Join(dir, "machines.csv")
					writeTraceFile(t, good, goodMachines, false)
					o.MachineEvents = []string{good}
				}
				_, err = ReadGoogleTrace(o)
			default:
				o := AlibabaOptions{Nodes: []string{path}, Pods: []string{path}}
				if tc.kind == "alibaba-pods" {
					good := filepath.Join(dir, "nodes.csv")
					writeTraceFile(t, good, goodNode, false)
					o.Nodes = []string{good}
				}
				_, err = ReadAlibabaTrace(o)
			}
			var rowErr *RowError
			if !errors.As(err, &rowErr) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a *RowError containing %q", err, tc.want)
			}
		})
	}
}

func writeTraceFile(t *testing.T, path, body string, compress bool) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !compress {
		if _, err := f.WriteString(body); err != nil {
			t.Fatal(err)
		}
		return
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}
