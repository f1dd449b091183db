// Package layout holds the test that keeps the import rules of DESIGN.md's
// layout table true: arrows point one way, txn at the bottom and cmd/cell
// at the top. It has no code of its own.
package layout
