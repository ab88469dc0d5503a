package cookiestore_test

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPU runs the benchmark loop on one locked OS thread and reports the
// CPU time that thread used per op ("cpu-ns/op"): on a machine shared by
// many processes, wall time per op mostly measures waiting for a core.
func threadCPU(b *testing.B, loop func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var r0, r1 syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &r0)
	loop()
	syscall.Getrusage(1, &r1)
	cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	if b.N > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
