// Package procstat reads resource counters of processes and of the machine
// from a Linux /proc file system.
//
// Contract:
//   - Readers take the /proc root as a parameter ("/proc" in production, a
//     directory of golden files in tests) and never cache.
//   - Counters are returned raw (CPU in clock ticks, memory in bytes); turning
//     two readings into a rate is the caller's job, helped by [CPUMilli] and
//     [MachineCPUMilli].
//   - A process that exits while being read is not an error for [Scan]: it is
//     skipped, because /proc is a moving target.
//
// CPU times in /proc are in USER_HZ ticks, which Linux fixes at 100 per
// second for user space on every architecture Go supports.
package procstat
