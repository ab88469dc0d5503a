package cache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"scaleout/cache"
	"scaleout/cache/local"
)

func newLocal(t *testing.T) *local.Store {
	t.Helper()
	s, err := local.New(local.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	s := newLocal(t)
	tests := []struct {
		name string
		cfg  cache.Config[int]
	}{
		{"no store", cache.Config[int]{}},
		{"jitter above 1", cache.Config[int]{Store: s, Jitter: 1.5}},
		{"negative beta", cache.Config[int]{Store: s, EarlyRefresh: -1}},
		{"negative ttl", cache.Config[int]{Store: s, NegativeTTL: -time.Second}},
	}
	for _, tt := range tests {
		if _, err := cache.New(tt.cfg); err == nil {
			t.Errorf("%s: New err = nil, want an error", tt.name)
		}
	}
	if _, err := cache.New(cache.Config[int]{}); !errors.Is(err, cache.ErrNoStore) {
		t.Errorf("no store: err = %v, want ErrNoStore", err)
	}
}

// TestEarlyRefresh: with a large beta and a slow recorded load, every hit
// falls inside the XFetch window, so a hit reloads while the cached value
// keeps being served.
func TestEarlyRefresh(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	c, err := cache.New(cache.Config[int]{
		Store: newLocal(t), Jitter: -1, EarlyRefresh: 1e9,
		Now: func() time.Time { return time.Unix(0, clock.Load()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int64
	load := func(context.Context) (int, error) {
		clock.Add(int64(time.Millisecond)) // the load takes 1ms of fake time
		return int(loads.Add(1)), nil
	}
	ctx := context.Background()
	if v, _ := c.GetOrLoad(ctx, "hot", time.Hour, load); v != 1 {
		t.Fatalf("first load = %d, want 1", v)
	}
	v, err := c.GetOrLoad(ctx, "hot", time.Hour, load)
	if err != nil || v != 2 {
		t.Fatalf("second read = %d, %v; want 2 (refreshed early)", v, err)
	}
	if st := c.Stats(); st.EarlyRefreshes != 1 {
		t.Errorf("EarlyRefreshes = %d, want 1", st.EarlyRefreshes)
	}
	// Without early refresh, the same hit does not reload.
	plain, _ := cache.New(cache.Config[int]{Store: newLocal(t)})
	_, _ = plain.GetOrLoad(ctx, "hot", time.Hour, load)
	before := loads.Load()
	_, _ = plain.GetOrLoad(ctx, "hot", time.Hour, load)
	if loads.Load() != before {
		t.Errorf("hit without early refresh loaded")
	}
}

func TestJitterShortensTTL(t *testing.T) {
	t.Parallel()
	s := newLocal(t)
	c, err := cache.New(cache.Config[int]{Store: s, Jitter: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	distinct := map[time.Duration]bool{}
	for i := range 20 {
		key := string(rune('a' + i))
		start := time.Now()
		if _, err := c.GetOrLoad(ctx, key, time.Hour, func(context.Context) (int, error) { return i, nil }); err != nil {
			t.Fatal(err)
		}
		e, _ := s.Get(ctx, key)
		ttl := e.Expires.Sub(start).Round(time.Second)
		if ttl < 30*time.Minute || ttl > time.Hour {
			t.Errorf("ttl with jitter 0.5 = %v, want within [30m, 1h]", ttl)
		}
		distinct[ttl] = true
	}
	if len(distinct) < 2 {
		t.Errorf("20 jittered TTLs took %d distinct values, want several", len(distinct))
	}
}

func TestLoaderPanicDoesNotWedgeKey(t *testing.T) {
	t.Parallel()
	c, _ := cache.New(cache.Config[int]{Store: newLocal(t), LeaseWait: 50 * time.Millisecond})
	ctx := context.Background()
	func() {
		defer func() { _ = recover() }()
		_, _ = c.GetOrLoad(ctx, "k", time.Minute, func(context.Context) (int, error) { panic("boom") })
	}()
	done := make(chan int)
	go func() {
		v, _ := c.GetOrLoad(ctx, "k", time.Minute, func(context.Context) (int, error) { return 3, nil })
		done <- v
	}()
	select {
	case v := <-done:
		if v != 3 {
			t.Errorf("got %d, want 3", v)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a load after a panicking loader never finished")
	}
}
