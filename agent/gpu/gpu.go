package gpu

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Device is one GPU as nvidia-smi reports it.
type Device struct {
	Index       int
	Name        string
	MemoryBytes int64
}

// ErrNoNvidiaSMI means nvidia-smi is not on PATH.
var ErrNoNvidiaSMI = errors.New("nvidia-smi not found on PATH")

// QueryArgs are the arguments Detect passes to nvidia-smi.
var QueryArgs = []string{"--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"}

// Detect runs nvidia-smi and parses its answer. It gives nvidia-smi at most
// timeout to answer (a wedged driver can make it hang).
func Detect(ctx context.Context, timeout time.Duration) ([]Device, error) {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil, ErrNoNvidiaSMI
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, QueryArgs...)
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && len(exitErr.Stderr) > 0 {
			return nil, fmt.Errorf("%s: %w: %s", path, err, strings.TrimSpace(string(exitErr.Stderr)))
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	devices, err := Parse(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return devices, nil
}

// Parse parses nvidia-smi's CSV answer: "index, name, memory.total" per
// line, memory in MiB.
func Parse(out []byte) ([]Device, error) {
	var devices []Device
	for n, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		fields := strings.Split(line, ",")
		if len(fields) != 3 {
			return nil, fmt.Errorf("line %d: %d fields, want index, name, memory.total: %q", n+1, len(fields), line)
		}
		index, err := strconv.Atoi(strings.TrimSpace(fields[0]))
		if err != nil {
			return nil, fmt.Errorf("line %d: index: %w", n+1, err)
		}
		name := strings.TrimSpace(fields[1])
		if name == "" {
			return nil, fmt.Errorf("line %d: empty name", n+1)
		}
		mib, err := strconv.ParseInt(strings.TrimSpace(fields[2]), 10, 64)
		if err != nil || mib < 0 {
			return nil, fmt.Errorf("line %d: memory.total %q is not a number of MiB", n+1, strings.TrimSpace(fields[2]))
		}
		devices = append(devices, Device{Index: index, Name: name, MemoryBytes: mib << 20})
	}
	return devices, nil
}

// vendorWords are dropped from the front of a name before the family is
// taken.
var vendorWords = map[string]bool{"nvidia": true, "tesla": true, "geforce": true, "quadro": true}

// Model returns the family of a GPU name: vendor words are dropped, then the
// first word is cut at its first '-' ("A100-SXM4-80GB" → "A100"). A first
// word without digits ("RTX", "TITAN") is joined to the next one with '-'
// ("GeForce RTX 4090" → "RTX-4090"), since "RTX" alone names no model.
func Model(name string) string {
	words := strings.Fields(name)
	for len(words) > 1 && vendorWords[strings.ToLower(words[0])] {
		words = words[1:]
	}
	if len(words) == 0 {
		return ""
	}
	first, _, _ := strings.Cut(words[0], "-")
	if !strings.ContainsFunc(first, unicode.IsDigit) && len(words) > 1 {
		next, _, _ := strings.Cut(words[1], "-")
		return first + "-" + next
	}
	return first
}
