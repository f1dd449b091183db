//go:build !cgo || !linux || musl

package cellstate

// trimCHeap: without cgo Pebble allocates from the Go heap, which
// debug.FreeOSMemory returns.
func trimCHeap() {}
