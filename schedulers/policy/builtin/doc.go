// Package builtin is the registry of omegacell's built-in placement
// policies — batch, service and gpu — for `cell scheduler --policy` and the
// simulator. It holds no state: every call builds policies with their
// defaults.
package builtin
