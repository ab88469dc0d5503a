//go:build linux

package balancer

import "syscall"

// threadCPU is the calling OS thread's CPU time in nanoseconds
// (getrusage RUSAGE_THREAD). The benchmarks report it per pick beside
// ns/op because this machine's cores are shared: wall time counts the
// time the benchmark waits for a core, CPU time does not.
func threadCPU() int64 {
	const rusageThread = 1
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
