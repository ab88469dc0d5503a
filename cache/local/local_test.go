package local_test

import (
	"container/list"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"

	"scaleout/cache"
	"scaleout/cache/cachetest"
	"scaleout/cache/local"
)

// servers hands every "server" the same store: in one process they share
// it.
func servers(t testing.TB) func() cache.Store {
	s, err := local.New(local.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return func() cache.Store { return s }
}

func TestConformance(t *testing.T) {
	t.Parallel()
	cachetest.TestStore(t, servers, cachetest.Options{})
}

func TestMemoryBounded(t *testing.T) {
	t.Parallel()
	s, err := local.New(local.Config{MaxBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := cachetest.NewCache[[]byte](t, s)
	value := make([]byte, 1000)
	load := func(context.Context) ([]byte, error) { return value, nil }
	for i := range 1000 {
		if _, err := c.GetOrLoad(context.Background(), fmt.Sprint(i), time.Hour, load); err != nil {
			t.Fatal(err)
		}
	}
	// 1000 entries of ~1.4 KB encoded in 64 KiB: most must be gone. Otter
	// evicts asynchronously, so poll.
	deadline := time.Now().Add(20 * time.Second)
	for s.Len() > 64 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.Len(); got > 64 {
		t.Errorf("entries held = %d, want at most 64 for a 64 KiB bound", got)
	}
	if got := c.Stats().Evictions; got == 0 {
		t.Errorf("Evictions = 0, want > 0")
	}
}

func TestPutRejectsForeignReservation(t *testing.T) {
	t.Parallel()
	s, err := local.New(local.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := &cache.Reservation{Key: "k", Leased: true, State: "not a stamp"}
	if err := s.Put(context.Background(), r, &cache.Entry{}, time.Second); err == nil {
		t.Errorf("Put with a foreign reservation: err = nil, want an error")
	}
}

func BenchmarkHit(b *testing.B) { cachetest.BenchmarkHit(b, servers) }

// BenchmarkHitCoarseClock is BenchmarkHit with a millisecond coarse clock.
func BenchmarkHitCoarseClock(b *testing.B) {
	clock := otter.NewCoarseClock(time.Millisecond)
	defer clock.Stop()
	cachetest.BenchmarkHit(b, func(t testing.TB) func() cache.Store {
		s, err := local.New(local.Config{Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return func() cache.Store { return s }
	})
}

func BenchmarkStampede(b *testing.B) { cachetest.BenchmarkStampede(b, servers) }

// BenchmarkZipfHitRatio replays one Zipf-distributed key stream (s=1.01
// over 100k keys) through the local store and through a plain LRU of the
// same capacity (2000 entries), and reports both hit ratios.
func BenchmarkZipfHitRatio(b *testing.B) {
	const keys, capacity, requests = 100_000, 2000, 300_000
	r := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(r, 1.01, 1, keys-1)
	stream := make([]string, requests)
	for i := range stream {
		stream[i] = fmt.Sprintf("key:%06d", z.Uint64())
	}
	value := make([]byte, 100)
	// Every entry weighs the same, so MaxBytes sets the entry capacity.
	weight := uint64(len("key:000000") + len(value) + 160)
	for b.Loop() {
		s, err := local.New(local.Config{MaxBytes: capacity * weight})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		var hits int
		for _, k := range stream {
			if e, _ := s.Get(ctx, k); e != nil {
				hits++
				continue
			}
			res, _ := s.Reserve(ctx, k, nil)
			_ = s.Put(ctx, res, &cache.Entry{Value: value}, time.Hour)
		}
		s.Close()
		b.ReportMetric(float64(hits)/requests, "otter-hit-ratio")
		b.ReportMetric(lruHitRatio(stream, capacity), "lru-hit-ratio")
	}
}

// lruHitRatio replays stream through a textbook LRU of capacity entries.
func lruHitRatio(stream []string, capacity int) float64 {
	order := list.New()
	index := make(map[string]*list.Element, capacity)
	hits := 0
	for _, k := range stream {
		if el, ok := index[k]; ok {
			hits++
			order.MoveToFront(el)
			continue
		}
		index[k] = order.PushFront(k)
		if order.Len() > capacity {
			last := order.Back()
			order.Remove(last)
			delete(index, last.Value.(string))
		}
	}
	return float64(hits) / float64(len(stream))
}

// BenchmarkOtterPeer is the floor BenchmarkHit is compared with: a bare
// otter lookup of the same 64 keys with per-entry expiry, as the Store
// configures otter, in the same run.
func BenchmarkOtterPeer(b *testing.B) {
	c := otter.Must(&otter.Options[string, *cachetest.Flight]{MaximumSize: 1000,
		ExpiryCalculator: otter.ExpiryWriting[string, *cachetest.Flight](time.Hour)})
	defer c.StopAllGoroutines()
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("flight:%d", i)
		c.Set(keys[i], &cachetest.Flight{ID: 42})
	}
	i := 0
	for b.Loop() {
		if v, ok := c.GetIfPresent(keys[i&63]); !ok || v.ID != 42 {
			b.Fatal("miss")
		}
		i++
	}
}
