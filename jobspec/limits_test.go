package jobspec

import (
	"testing"

	"github.com/omegacell/omegacell/proto/limits"
)

// A spec that parses must not be refused by the store for a bound: every
// limit of the spec format is within the API's.
func TestSpecLimitsAreWithinTheAPIs(t *testing.T) {
	cases := []struct {
		name      string
		spec, api int64
	}{
		{"count", MaxCount, limits.MaxTasksPerJob},
		{"retryLimit", MaxRetryLimit, limits.MaxRetryLimit},
		{"priority", MaxPriority, limits.MaxPriority},
		{"constraints", MaxConstraints, limits.MaxConstraints},
		{"args", MaxArgs, limits.MaxArgs},
		{"env", MaxEnv, limits.MaxEnv},
		{"string length", MaxStringLen, limits.MaxStringLen},
		{"gpus", MaxGPUs, limits.MaxGPUsPerMachine},
		{"cpu", maxCPUMilli, limits.MaxCPUMilli},
		{"bytes", maxBytes, limits.MaxBytes},
		{"job name", maxJobNameLen, limits.MaxJobNameLen},
		{"label key", maxLabelKeyLen, limits.MaxLabelKeyLen},
		{"label value", maxLabelValueLen, limits.MaxLabelValueLen},
	}
	for _, c := range cases {
		if c.spec > c.api {
			t.Errorf("%s: the spec allows %d, the API %d", c.name, c.spec, c.api)
		}
	}
}
