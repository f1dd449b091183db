package agent

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/omegacell/omegacell/proto/limits"
)

// ParseLabels parses "zone=a,rack=r1" into a map. Keys are the API's
// (limits.LabelKey); values may not contain ',' or '='.
func ParseLabels(s string) (map[string]string, error) {
	labels := make(map[string]string)
	if strings.TrimSpace(s) == "" {
		return labels, nil
	}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return nil, fmt.Errorf("labels: %q is not key=value", pair)
		}
		if !limits.LabelKey.MatchString(k) {
			return nil, fmt.Errorf("labels: key %q must be 1-63 letters, digits, '.', '_', '-' or '/', starting and ending with a letter or digit", k)
		}
		if strings.Contains(v, "=") {
			return nil, fmt.Errorf("labels: value of %q contains '='", k)
		}
		if len(v) > limits.MaxLabelValueLen {
			return nil, fmt.Errorf("labels: value of %q is longer than %d bytes", k, limits.MaxLabelValueLen)
		}
		if _, dup := labels[k]; dup {
			return nil, fmt.Errorf("labels: key %q given twice", k)
		}
		labels[k] = v
	}
	return labels, nil
}

// FormatLabels is the inverse of ParseLabels, keys sorted.
func FormatLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

// ParseCPU parses a CPU amount into millicores: "8" or "0.5" cores, or
// "500m" millicores.
func ParseCPU(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if m, ok := strings.CutSuffix(s, "m"); ok {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("cpu %q: want cores (8, 0.5) or millicores (500m)", s)
		}
		return v, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v > math.MaxInt64/1000 {
		return 0, fmt.Errorf("cpu %q: want cores (8, 0.5) or millicores (500m)", s)
	}
	return int64(math.Round(v * 1000)), nil
}

// byteSuffixes are the units ParseBytes accepts.
var byteSuffixes = []struct {
	suffix string
	factor int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

// ParseBytes parses an amount of bytes: a number with an optional binary
// (Ki, Mi, Gi, Ti) or decimal (K, M, G, T) suffix, as Kubernetes writes
// them: "512Mi", "16Gi", "1.5G", "1048576".
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	num, factor := s, int64(1)
	for _, u := range byteSuffixes {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, factor = n, u.factor
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*float64(factor) > math.MaxInt64 {
		return 0, fmt.Errorf("%q is not an amount of bytes (e.g. 512Mi, 16Gi, 1.5G)", s)
	}
	return int64(math.Round(v * float64(factor))), nil
}

// Profile is the shape of a simulated fleet.
type Profile struct {
	// Zones and RacksPerZone: machine i is in rack i mod (Zones ×
	// RacksPerZone), racks dealt round-robin over zones, so every zone
	// and rack gets the same number of machines (±1).
	Zones        int
	RacksPerZone int
	CPUMilli     int64
	MemoryBytes  int64
	DiskBytes    int64
	// GPUFraction of the machines have GPUs; they are spread evenly
	// (machine i has GPUs when ⌊(i+1)·f⌋ > ⌊i·f⌋).
	GPUFraction    float64
	GPUs           int
	GPUModel       string
	GPUMemoryBytes int64
	// Utilization is the mean fraction of its reservation a simulated task
	// reports as used.
	Utilization float64
	// TaskUsage adds per-task usage to the usage heartbeats.
	TaskUsage bool
}

// DefaultProfile is a cell of 3 zones × 4 racks, 32-core 128 GiB machines,
// a quarter of them with 8 H100s.
func DefaultProfile() Profile {
	return Profile{
		Zones: 3, RacksPerZone: 4,
		CPUMilli: 32_000, MemoryBytes: 128 << 30, DiskBytes: 1 << 40,
		GPUFraction: 0.25, GPUs: 8, GPUModel: "H100", GPUMemoryBytes: 80 << 30,
		Utilization: 0.5, TaskUsage: true,
	}
}

// DefaultProfileString is DefaultProfile written as a --profile value.
const DefaultProfileString = "zones=3,racks=4,cpu=32,memory=128Gi,disk=1Ti,gpu-fraction=0.25,gpus=8,gpu-model=H100,gpu-memory=80Gi,utilization=0.5,task-usage=true"

// ProfileKeys documents the keys ParseProfile accepts.
const ProfileKeys = "zones, racks (per zone), cpu, memory, disk, gpu-fraction, gpus, gpu-model, gpu-memory, utilization, task-usage"

// ParseProfile parses "zones=3,racks=4,gpu-fraction=0.25,gpu-model=A100,..."
// on top of DefaultProfile.
func ParseProfile(s string) (Profile, error) {
	p := DefaultProfile()
	if strings.TrimSpace(s) == "" {
		return p, nil
	}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return Profile{}, fmt.Errorf("profile: %q is not key=value (keys: %s)", pair, ProfileKeys)
		}
		var err error
		switch k {
		case "zones":
			p.Zones, err = positiveInt(v)
		case "racks":
			p.RacksPerZone, err = positiveInt(v)
		case "cpu":
			p.CPUMilli, err = ParseCPU(v)
		case "memory":
			p.MemoryBytes, err = ParseBytes(v)
		case "disk":
			p.DiskBytes, err = ParseBytes(v)
		case "gpu-fraction":
			p.GPUFraction, err = fraction(v)
		case "gpus":
			p.GPUs, err = strconv.Atoi(v)
			if err == nil && p.GPUs < 0 {
				err = fmt.Errorf("%d is negative", p.GPUs)
			}
		case "gpu-model":
			if v == "" {
				err = fmt.Errorf("empty")
			}
			p.GPUModel = v
		case "gpu-memory":
			p.GPUMemoryBytes, err = ParseBytes(v)
		case "utilization":
			p.Utilization, err = fraction(v)
		case "task-usage":
			p.TaskUsage, err = strconv.ParseBool(v)
		default:
			return Profile{}, fmt.Errorf("profile: unknown key %q (keys: %s)", k, ProfileKeys)
		}
		if err != nil {
			return Profile{}, fmt.Errorf("profile: %s: %v", k, err)
		}
	}
	if p.CPUMilli <= 0 || p.MemoryBytes <= 0 {
		return Profile{}, fmt.Errorf("profile: cpu and memory must be positive")
	}
	return p, nil
}

func positiveInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive integer", s)
	}
	return n, nil
}

func fraction(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1 || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a number between 0 and 1", s)
	}
	return f, nil
}
