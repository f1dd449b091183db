package builtin

import (
	"github.com/omegacell/omegacell/schedulers/batch"
	"github.com/omegacell/omegacell/schedulers/gpu"
	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/service"
)

// Registry returns a registry of the built-in policies with their default
// settings.
func Registry() *policy.Registry {
	r, err := policy.NewRegistry(batch.New(), service.New(), gpu.New())
	if err != nil {
		// The built-in names are distinct constants; this cannot happen.
		panic("builtin: " + err.Error())
	}
	return r
}

// Lookup returns the built-in policy named name ("batch", "service",
// "gpu").
func Lookup(name string) (policy.Policy, error) { return Registry().Lookup(name) }
