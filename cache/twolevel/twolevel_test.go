package twolevel_test

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"scaleout/cache"
	"scaleout/cache/cachetest"
	"scaleout/cache/local"
	"scaleout/cache/rediscache"
	"scaleout/cache/twolevel"
	"scaleout/internal/testserver"
)

const patience = 20 * time.Second

// server is one app server's two-level store with its near cache.
type server struct {
	*twolevel.Store
	near *local.Store
}

// newServer makes a two-level store over the Redis at addr, runs it until
// the test ends and waits until its subscription is up.
func newServer(t testing.TB, addr string) server {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true,
		MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second})
	remote, err := rediscache.New(rediscache.Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	near, err := local.New(local.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := twolevel.New(twolevel.Config{Remote: remote, Near: near, PingInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Close()
		near.Close()
		client.Close()
	})
	waitFor(t, "subscription up", s.Live)
	return server{Store: s, near: near}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting for %s", patience, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func serversAt(addr func(testing.TB) string) cachetest.Servers {
	return func(t testing.TB) func() cache.Store {
		a := addr(t)
		return func() cache.Store { return newServer(t, a) }
	}
}

func realRedis(t testing.TB) string { return testserver.Redis(t).Addr }

func TestConformanceRedis(t *testing.T) {
	t.Parallel()
	cachetest.TestStore(t, serversAt(realRedis), cachetest.Options{Eventual: true})
}

func TestConformanceEmbedded(t *testing.T) {
	t.Parallel()
	cachetest.TestStore(t, serversAt(cachetest.Embedded), cachetest.Options{Eventual: true})
}

// warm reads key on s until its near cache holds it.
func warm(t testing.TB, c *cache.Cache[int], s server, key string, v int) {
	t.Helper()
	load := func(context.Context) (int, error) { return v, nil }
	waitFor(t, "near cache filled", func() bool {
		if _, err := c.GetOrLoad(context.Background(), key, time.Hour, load); err != nil {
			t.Fatal(err)
		}
		e, _ := s.near.Get(context.Background(), key)
		return e != nil
	})
}

// TestWriteReachesOtherServersNearCache: a key near-cached on b and c is
// dropped from both when a invalidates it, by key and by tag.
func TestWriteReachesOtherServersNearCache(t *testing.T) {
	t.Parallel()
	addr := realRedis(t)
	a, b, c := newServer(t, addr), newServer(t, addr), newServer(t, addr)
	ca, cb, cc := cachetest.NewCache[int](t, a), cachetest.NewCache[int](t, b), cachetest.NewCache[int](t, c)
	for _, byTag := range []bool{false, true} {
		key := "seats:42"
		warm(t, cb, b, key, 1)
		warm(t, cc, c, key, 1)
		if byTag {
			// Tagged entries need tags on the load.
			_ = ca.Invalidate(context.Background(), key)
			for _, s := range []struct {
				c *cache.Cache[int]
				s server
			}{{cb, b}, {cc, c}} {
				waitFor(t, "untagged copy gone", func() bool { e, _ := s.s.near.Get(context.Background(), key); return e == nil })
				waitFor(t, "tagged copy near", func() bool {
					_, _ = s.c.GetOrLoad(context.Background(), key, time.Hour, func(context.Context) (int, error) { return 1, nil }, cache.WithTags("flight:42"))
					e, _ := s.s.near.Get(context.Background(), key)
					return e != nil && slices.Contains(e.Tags, "flight:42")
				})
			}
			if err := ca.InvalidateTags(context.Background(), "flight:42"); err != nil {
				t.Fatal(err)
			}
		} else if err := ca.Invalidate(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		for name, s := range map[string]server{"b": b, "c": c} {
			waitFor(t, "server "+name+" dropping its near copy", func() bool {
				e, _ := s.near.Get(context.Background(), key)
				return e == nil
			})
		}
	}
}

// TestRedisDownNearOff: when Redis dies the near cache stops serving (it
// could miss invalidations), reads go to the loader, and when Redis is
// back the near cache serves again.
func TestRedisDownNearOff(t *testing.T) {
	t.Parallel()
	srv := testserver.Redis(t)
	s := newServer(t, srv.Addr)
	c := cachetest.NewCache[int](t, s)
	warm(t, c, s, "k", 1)
	srv.Kill()
	// Run turns the near cache off, then empties it.
	waitFor(t, "near cache off and empty after redis died", func() bool {
		e, _ := s.near.Get(context.Background(), "k")
		return !s.Live() && e == nil
	})
	v, err := c.GetOrLoad(context.Background(), "k", time.Hour, func(context.Context) (int, error) { return 2, nil })
	if err != nil || v != 2 {
		t.Errorf("read with redis down = %d, %v; want 2 from the loader", v, err)
	}
	if c.Stats().StoreErrors == 0 {
		t.Errorf("StoreErrors = 0 with redis down")
	}
	srv.Restart(context.Background())
	waitFor(t, "near cache back after redis restarted", s.Live)
	warm(t, c, s, "k", 3)
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	if _, err := twolevel.New(twolevel.Config{}); err == nil {
		t.Errorf("no remote: err = nil, want an error")
	}
}

// BenchmarkHitNear measures a near-cache hit, to compare with
// local.BenchmarkHit.
func BenchmarkHitNear(b *testing.B) { cachetest.BenchmarkHit(b, serversAt(realRedis)) }

// BenchmarkStampede counts loads when 4 servers x 16 goroutines miss.
func BenchmarkStampede(b *testing.B) { cachetest.BenchmarkStampede(b, serversAt(realRedis)) }

// BenchmarkInvalidationPropagation measures how long after server a's
// Invalidate returns the copy in server b's near cache is gone (real
// Redis, loopback). Reported: mean and max in microseconds.
func BenchmarkInvalidationPropagation(b *testing.B) { propagation(b, realRedis(b)) }

// BenchmarkInvalidationPropagationEmbedded is the same through the
// embedded server of `scaleout up`.
func BenchmarkInvalidationPropagationEmbedded(b *testing.B) { propagation(b, cachetest.Embedded(b)) }

func propagation(b *testing.B, addr string) {
	a, bs := newServer(b, addr), newServer(b, addr)
	ca, cb := cachetest.NewCache[int](b, a), cachetest.NewCache[int](b, bs)
	ctx := context.Background()
	var total, worst time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		warm(b, cb, bs, "k", n)
		b.StartTimer()
		start := time.Now()
		if err := ca.Invalidate(ctx, "k"); err != nil {
			b.Fatal(err)
		}
		for {
			if e, _ := bs.near.Get(ctx, "k"); e == nil {
				break
			}
			if time.Since(start) > patience {
				b.Fatal("invalidation never reached server b")
			}
			runtime.Gosched()
		}
		d := time.Since(start)
		total += d
		worst = max(worst, d)
		n++
	}
	b.ReportMetric(float64(total.Microseconds())/float64(n), "µs/propagation")
	b.ReportMetric(float64(worst.Microseconds()), "µs-max")
}
