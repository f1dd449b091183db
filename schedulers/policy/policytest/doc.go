// Package policytest builds cells and checks decisions for the tests of
// placement policies: random but consistent views (every allocation made
// through txn.Validate), the property every policy must have (its claims
// and preemptions pass txn.Validate against the view it decided on), the
// cell invariant, and golden files of decisions.
//
// It is test support: deterministic given its seeds, no I/O except the
// golden files under the calling package's testdata/ (rewritten with
// -update).
package policytest
