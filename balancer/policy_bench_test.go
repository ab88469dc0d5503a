package balancer

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkSelect measures one pick per policy over pools of 3 and 100
// members with mixed weights (1, 2, 3, ...) and every member busy (1 to 7
// in flight), the worst case for least-connections (no idle member ends its
// scan) and hash (the bound needs the pool's total in flight). The hash
// policy cycles over 64 client addresses. Beside ns/op it reports
// cpu-ns/op, the benchmark thread's CPU time per pick, which a machine
// shared with other work inflates much less.
func BenchmarkSelect(b *testing.B) { benchmarkSelect(b, true) }

// BenchmarkSelectIdle is BenchmarkSelect with no request in flight, a
// lightly loaded balancer: least-connections stops at the first member it
// looks at and hash needs no total.
func BenchmarkSelectIdle(b *testing.B) { benchmarkSelect(b, false) }

func benchmarkSelect(b *testing.B, busy bool) {
	for _, name := range PolicyNames() {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/members=%d", name, n), func(b *testing.B) {
				weights := make([]int, n)
				for i := range weights {
					weights[i] = 1 + i%3
				}
				pool := policyPool(b, weights...)
				for i, m := range pool {
					if busy {
						m.inFlight.Store(int64(1 + i%7))
					}
					m.observe(0, time.Duration(1+i%5)*time.Millisecond, false)
				}
				reqs := make([]*Request, 64)
				for i := range reqs {
					reqs[i] = policyRequest("/flights", fmt.Sprintf("10.1.%d.%d", i/8, i), "User-Agent", "bench")
					reqs[i].Now = int64(time.Second)
				}
				s := mustSelector(b, PolicyConfig{Name: name})
				b.ReportAllocs()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu0 := threadCPU()
				k := 0
				for b.Loop() {
					if _, ok := s.Select(pool, reqs[k&63]); !ok {
						b.Fatal("no member")
					}
					k++
				}
				if cpu := threadCPU() - cpu0; cpu > 0 {
					b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
				}
			})
		}
	}
}

// BenchmarkSelectParallel is BenchmarkSelect's 100-member pool with every
// CPU picking at once: it shows contention on shared state (round robin's
// counter) and on the members' counters.
func BenchmarkSelectParallel(b *testing.B) {
	for _, name := range PolicyNames() {
		b.Run(name, func(b *testing.B) {
			pool := policyPool(b, make([]int, 100)...)
			for i, m := range pool {
				m.inFlight.Store(int64(1 + i%7))
			}
			s := mustSelector(b, PolicyConfig{Name: name})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := policyRequest("/flights", "10.1.2.3")
				for pb.Next() {
					if _, ok := s.Select(pool, r); !ok {
						b.Error("no member")
						return
					}
				}
			})
		})
	}
}
