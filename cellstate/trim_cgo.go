//go:build cgo && linux && !musl

package cellstate

// #include <malloc.h>
import "C"

// trimCHeap returns the C heap's free memory to the OS. Pebble allocates
// its memtables and block cache with C's malloc (when cgo is on), and
// glibc keeps freed chunks in its arenas.
func trimCHeap() { C.malloc_trim(0) }
