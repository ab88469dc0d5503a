package balancer

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkBalanceQuality measures how well each policy steers around a slow
// member: a pool of one member answering in 50ms and two in 1ms, loaded by
// 64 concurrent keep-alive clients through the real proxy. It reports the
// client latency percentiles and the slow member's share of requests. Run
// with -benchtime=1x: each iteration sends 30,000 requests.
//
//	go test -run '^$' -bench BalanceQuality -benchtime=1x ./balancer/
func BenchmarkBalanceQuality(b *testing.B) {
	for _, policy := range []string{"random", "round-robin", "least-connections", "p2c", "peak-ewma"} {
		b.Run(policy, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				p50, p90, p99, share := balanceQuality(b, policy, 30000)
				b.ReportMetric(p50, "p50-ms")
				b.ReportMetric(p90, "p90-ms")
				b.ReportMetric(p99, "p99-ms")
				b.ReportMetric(share, "slow-share-%")
			}
		})
	}
}

func balanceQuality(b *testing.B, policy string, n int) (p50, p90, p99, slowShare float64) {
	slow := newMember(b, "slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
	})
	fast := func(w http.ResponseWriter, r *http.Request) { time.Sleep(time.Millisecond) }
	f1, f2 := newMember(b, "f1", fast), newMember(b, "f2", fast)
	sel, err := NewSelector(PolicyConfig{Name: policy})
	if err != nil {
		b.Fatal(err)
	}
	p := startBalancer(b, Config{Selector: sel}, slow.URL, f1.URL, f2.URL)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n)
	runLoad(64, n, 2*time.Minute, func(int) error {
		start := time.Now()
		resp, err := client.Get(p.url + "/")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		return nil
	})
	slices.Sort(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(q*float64(len(lat)-1))]) / 1e6
	}
	return pct(0.50), pct(0.90), pct(0.99), 100 * float64(slow.count.Load()) / float64(len(lat))
}
