//go:build cgo && linux && !musl

package cellstate

// #include <malloc.h>
import "C"

// With cgo, Pebble allocates its memtables and block cache with C's
// malloc, and glibc keeps what is freed in its arenas. Two settings keep
// that memory from staying resident after a large retention sweep
// (issue 11: 80 MB of free chunks resident in five arenas after a million
// tasks passed):
//   - allocations of 1 MiB or more (memtable arenas, flush and compaction
//     buffers) are mapped on their own and unmapped when freed, rather
//     than carved from an arena where they leave free, resident pages;
//   - at most two arenas: Pebble's C allocations are few (memtables, cache
//     blocks), so contention does not matter, and fewer arenas strand less.
func init() {
	C.mallopt(C.M_MMAP_THRESHOLD, 1<<20)
	C.mallopt(C.M_ARENA_MAX, 2)
}

// trimCHeap returns the C heap's free memory to the OS: the free top of
// each arena and every free page inside them.
func trimCHeap() { C.malloc_trim(0) }
