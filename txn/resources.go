package txn

import "fmt"

// MilliPerGPU is the capacity of one GPU device in milli-GPU.
const MilliPerGPU = 1000

// Resources is an amount of each resource kind. GPUMilli counts milli-GPU:
// 500 is half a device, 2000 two whole devices.
type Resources struct {
	CPUMilli    int64
	MemoryBytes int64
	DiskBytes   int64
	GPUMilli    int64
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.CPUMilli + o.CPUMilli, r.MemoryBytes + o.MemoryBytes, r.DiskBytes + o.DiskBytes, r.GPUMilli + o.GPUMilli}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.CPUMilli - o.CPUMilli, r.MemoryBytes - o.MemoryBytes, r.DiskBytes - o.DiskBytes, r.GPUMilli - o.GPUMilli}
}

// IsZero reports whether every amount is zero.
func (r Resources) IsZero() bool { return r == Resources{} }

// LessOrEqual reports whether every amount of r is at most that of o.
func (r Resources) LessOrEqual(o Resources) bool {
	return r.CPUMilli <= o.CPUMilli && r.MemoryBytes <= o.MemoryBytes && r.DiskBytes <= o.DiskBytes && r.GPUMilli <= o.GPUMilli
}

func (r Resources) String() string {
	return fmt.Sprintf("cpu=%dm mem=%d disk=%d gpu=%dm", r.CPUMilli, r.MemoryBytes, r.DiskBytes, r.GPUMilli)
}

// ValidateRequest checks a task's requested resources: nothing negative,
// something requested, and a GPU amount that is either fractional (below
// one device) or a whole number of devices. The error names the field.
func ValidateRequest(r Resources) error {
	switch {
	case r.CPUMilli < 0:
		return fmt.Errorf("resources.cpu_milli: %d is negative", r.CPUMilli)
	case r.MemoryBytes < 0:
		return fmt.Errorf("resources.memory_bytes: %d is negative", r.MemoryBytes)
	case r.DiskBytes < 0:
		return fmt.Errorf("resources.disk_bytes: %d is negative", r.DiskBytes)
	case r.GPUMilli < 0:
		return fmt.Errorf("resources.gpu_milli: %d is negative", r.GPUMilli)
	case r.CPUMilli == 0 && r.MemoryBytes == 0 && r.GPUMilli == 0:
		return fmt.Errorf("resources: a task must request some cpu_milli, memory_bytes or gpu_milli")
	case r.GPUMilli > MilliPerGPU && r.GPUMilli%MilliPerGPU != 0:
		return fmt.Errorf("resources.gpu_milli: %d is neither below one device (1000) nor a whole number of devices", r.GPUMilli)
	}
	return nil
}

// ValidateCapacity checks a machine's capacity: nothing negative, some CPU
// and memory, whole GPU devices only.
func ValidateCapacity(r Resources) error {
	switch {
	case r.CPUMilli <= 0:
		return fmt.Errorf("capacity.cpu_milli: %d must be positive", r.CPUMilli)
	case r.MemoryBytes <= 0:
		return fmt.Errorf("capacity.memory_bytes: %d must be positive", r.MemoryBytes)
	case r.DiskBytes < 0:
		return fmt.Errorf("capacity.disk_bytes: %d is negative", r.DiskBytes)
	case r.GPUMilli < 0 || r.GPUMilli%MilliPerGPU != 0:
		return fmt.Errorf("capacity.gpu_milli: %d must be a non-negative multiple of 1000 (whole devices)", r.GPUMilli)
	}
	return nil
}

// DeviceShare is the part of one GPU device a task holds.
type DeviceShare struct {
	Device uint32
	Milli  uint32
}
