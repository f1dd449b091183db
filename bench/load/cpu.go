package load

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Every component of the benchmark runs in this process under a pprof
// label; goroutines inherit the label of the goroutine that starts them,
// so the store's commit loop, Pebble, the gRPC server and the embedded
// NATS are "server", the simulated fleet is "agents", each scheduler is
// "scheduler/<name>" and the benchmark's own submitters and watch are
// "bench". A CPU profile of the measured window is split by that label.
const componentLabel = "component"

// Components.
const (
	compServer      = "server"
	compAgents      = "agents"
	compBench       = "bench"
	compSchedPrefix = "scheduler/"
	// compUnattributed: the Go runtime (GC, scheduler) and goroutines
	// started outside any component (timers, some gRPC transports).
	compUnattributed = "unattributed"
)

// withComponent runs f with the component label set.
func withComponent(ctx context.Context, component string, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels(componentLabel, component), f)
}

// CPUFigures is the CPU the process used over the measured window.
type CPUFigures struct {
	WallSeconds float64 `json:"wall_s"`
	UserSeconds float64 `json:"user_s"`
	SysSeconds  float64 `json:"sys_s"`
	// Cores is (user + sys) / wall: how many of the machine's cores the
	// whole benchmark kept busy.
	Cores      float64        `json:"cores"`
	Components []ComponentCPU `json:"components,omitempty"`
	// Note says why components are missing, if they are.
	Note string `json:"note,omitempty"`
}

// ComponentCPU is one component's share of the profile's CPU samples,
// scaled to the rusage total.
type ComponentCPU struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"cpu_s"`
	Share   float64 `json:"share"`
}

// cpuWindow measures CPU from start to stop.
type cpuWindow struct {
	wall    time.Time
	usage   syscall.Rusage
	profile *bytes.Buffer
	copyTo  io.Writer
	note    string
}

// startCPU starts the window and the CPU profile (also written to copyTo
// when set, for --cpuprofile).
func startCPU(copyTo io.Writer) *cpuWindow {
	w := &cpuWindow{wall: time.Now(), profile: &bytes.Buffer{}, copyTo: copyTo}
	if err := pprof.StartCPUProfile(w.profile); err != nil {
		w.profile, w.note = nil, fmt.Sprintf("no CPU profile (%v): components not measured", err)
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &w.usage)
	return w
}

func (w *cpuWindow) stop() (CPUFigures, error) {
	var end syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &end)
	wall := time.Since(w.wall)
	if w.profile != nil {
		pprof.StopCPUProfile()
	}
	f := CPUFigures{
		WallSeconds: wall.Seconds(),
		UserSeconds: seconds(end.Utime) - seconds(w.usage.Utime),
		SysSeconds:  seconds(end.Stime) - seconds(w.usage.Stime),
		Note:        w.note,
	}
	f.Cores = (f.UserSeconds + f.SysSeconds) / f.WallSeconds
	if w.profile == nil {
		return f, nil
	}
	if w.copyTo != nil {
		if _, err := w.copyTo.Write(w.profile.Bytes()); err != nil {
			return f, fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	byComponent, err := profileByLabel(w.profile.Bytes(), componentLabel)
	if err != nil {
		f.Note = fmt.Sprintf("reading the CPU profile: %v", err)
		return f, nil
	}
	var sampled int64
	for _, ns := range byComponent {
		sampled += ns
	}
	total := f.UserSeconds + f.SysSeconds
	for name, ns := range byComponent {
		if name == "" {
			name = compUnattributed
		}
		share := float64(ns) / float64(max(sampled, 1))
		f.Components = append(f.Components, ComponentCPU{Name: name, Seconds: share * total, Share: share})
	}
	slices.SortFunc(f.Components, func(a, b ComponentCPU) int {
		if a.Seconds != b.Seconds {
			if a.Seconds > b.Seconds {
				return -1
			}
			return 1
		}
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	if len(f.Components) == 0 {
		f.Note = "the CPU profile holds no samples (window too short)"
	}
	return f, nil
}

func seconds(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// profileByLabel sums the CPU nanoseconds of a (gzipped) pprof profile by
// the value of one label ("" for samples without it or a fallback label). It reads only what
// it needs of profile.proto: samples (field 2: values, labels) and the
// string table (field 6); the value summed is the last sample type, which
// is cpu/nanoseconds in a Go CPU profile.
func profileByLabel(data []byte, key string) (map[string]int64, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	type sample struct {
		value      int64
		keys, strs []int64
	}
	var samples []sample
	var strs []string
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		raw = raw[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, raw); n < 0 {
				return nil, protowire.ParseError(n)
			}
			raw = raw[n:]
			continue
		}
		b, n := protowire.ConsumeBytes(raw)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		raw = raw[n:]
		switch num {
		case 2:
			var s sample
			if err := parseSample(b, &s.value, &s.keys, &s.strs); err != nil {
				return nil, err
			}
			samples = append(samples, s)
		case 6:
			strs = append(strs, string(b))
		}
	}
	out := map[string]int64{}
	for _, s := range samples {
		value := ""
		for i, k := range s.keys {
			if k < 0 || int(k) >= len(strs) || int(s.strs[i]) >= len(strs) {
				continue
			}
			if name, ok := fallbackLabels[strs[k]]; ok && value == "" {
				value = name
			}
			if strs[k] == key {
				value = strs[s.strs[i]]
				break
			}
		}
		out[value] += s.value
	}
	return out, nil
}

// fallbackLabels name the component of samples without the component
// label by a label of their own: Pebble starts its WAL and compaction
// goroutines under fresh labels ("pebble": "wal-sync", ...), which drops
// the server's.
var fallbackLabels = map[string]string{"pebble": compServer}

// parseSample reads a Sample: its last value (field 2, packed or not) and
// its string labels (field 3: key 1, str 2).
func parseSample(b []byte, value *int64, keys, strs *[]int64) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			*value, b = int64(v), b[n:]
		case num == 2 && typ == protowire.BytesType:
			packed, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			for len(packed) > 0 {
				v, n := protowire.ConsumeVarint(packed)
				if n < 0 {
					return protowire.ParseError(n)
				}
				*value, packed = int64(v), packed[n:]
			}
		case num == 3 && typ == protowire.BytesType:
			label, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			k, s := int64(-1), int64(0)
			for len(label) > 0 {
				ln, lt, n := protowire.ConsumeTag(label)
				if n < 0 {
					return protowire.ParseError(n)
				}
				label = label[n:]
				if lt != protowire.VarintType {
					if n = protowire.ConsumeFieldValue(ln, lt, label); n < 0 {
						return protowire.ParseError(n)
					}
					label = label[n:]
					continue
				}
				v, n := protowire.ConsumeVarint(label)
				if n < 0 {
					return protowire.ParseError(n)
				}
				label = label[n:]
				switch ln {
				case 1:
					k = int64(v)
				case 2:
					s = int64(v)
				}
			}
			*keys, *strs = append(*keys, k), append(*strs, s)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return nil
}
