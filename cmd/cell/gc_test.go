package main

import "testing"

func TestMemTotalBytes(t *testing.T) {
	// Linux CI machines have /proc/meminfo; anything is at least 64 MiB.
	if got := memTotalBytes(); got < 64<<20 {
		t.Fatalf("memTotalBytes = %d, want the machine's memory", got)
	}
}
