package fair

import "github.com/omegacell/omegacell/txn"

// DominantShare is the largest of usage's CPU, memory and GPU fractions of
// capacity (resources the cell has none of are ignored), in [0, ∞).
func DominantShare(usage, capacity txn.Resources) float64 {
	s := 0.0
	for _, d := range [...][2]int64{
		{usage.CPUMilli, capacity.CPUMilli},
		{usage.MemoryBytes, capacity.MemoryBytes},
		{usage.GPUMilli, capacity.GPUMilli},
	} {
		if d[1] > 0 {
			s = max(s, float64(d[0])/float64(d[1]))
		}
	}
	return s
}

// WeightedShare is DominantShare divided by weight (weight 0 counts as 1).
func WeightedShare(usage, capacity txn.Resources, weight uint32) float64 {
	return DominantShare(usage, capacity) / float64(max(weight, 1))
}

// Jain is Jain's fairness index of xs, (Σx)² / (n·Σx²): 1 when every x is
// equal, 1/n when one holds everything. For weighted fairness pass each
// tenant's dominant share divided by its weight. An empty or all-zero
// input is perfectly fair (1).
func Jain(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(xs)) * sq)
}
