package cachetest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkHit measures GetOrLoad on a cached key of a typed value, serially
// and in parallel, on one server's store.
func BenchmarkHit(b *testing.B, servers Servers) {
	newServer := servers(b)
	c := NewCache[Flight](b, newServer())
	want := Flight{ID: 42, Seats: 7, Note: "hot"}
	load := func(context.Context) (Flight, error) { return want, nil }
	ctx := context.Background()
	for i := range 64 {
		key := fmt.Sprintf("flight:%d", i)
		if _, err := c.GetOrLoad(ctx, key, time.Hour, load); err != nil {
			b.Fatal(err)
		}
	}
	// Read each key once more so a near cache has them all.
	for i := range 64 {
		_, _ = c.GetOrLoad(ctx, fmt.Sprintf("flight:%d", i), time.Hour, load)
	}
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("flight:%d", i)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			v, err := c.GetOrLoad(ctx, keys[i&63], time.Hour, load)
			if err != nil || v.ID != 42 {
				b.Fatalf("got %+v, %v", v, err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := c.GetOrLoad(ctx, keys[i&63], time.Hour, load); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
	if st := c.Stats(); st.Loads != 64 {
		b.Errorf("loads = %d, want 64: the benchmark measured misses", st.Loads)
	}
}

// BenchmarkStampede runs rounds of 4 servers x 16 goroutines missing one
// fresh key together, and reports loads per stampede (1 is the target).
func BenchmarkStampede(b *testing.B, servers Servers) {
	newServer := servers(b)
	var loads int64
	n := 0
	for b.Loop() {
		loads += Stampede(b, newServer, 4, 16, fmt.Sprintf("stampede:%d", n), 20*time.Millisecond)
		n++
	}
	b.ReportMetric(float64(loads)/float64(n), "loads/stampede")
}
