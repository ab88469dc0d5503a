//go:build !linux

package balancer

// threadCPU is not measured off Linux; the benchmarks then report no
// CPU time.
func threadCPU() int64 { return 0 }
