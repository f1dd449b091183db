// Package builtin finds benchmark inputs by name: a file shipped with a
// benchmark (embedded YAML) or, failing that, a path on disk. The simulator
// and the load benchmark name their workloads the same way.
package builtin
