// Package cachetest is the conformance suite every cache.Store runs: the
// in-process store, Redis, the embedded RESP server and the two-level store
// all pass the same tests, through the typed cache.Cache that applications
// use. It also holds the shared benchmarks (hit latency, stampede).
package cachetest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"scaleout/cache"
)

// Servers makes the stores of one test: each call of the returned function
// is one more app server's Store, and all of them share entries (one Redis,
// or one in-process store handed out again). Stores are closed by
// t.Cleanup.
type Servers func(t testing.TB) (newServer func() cache.Store)

// Options describes the backend under test.
type Options struct {
	// Eventual says that an invalidation made through one server reaches
	// the other servers' copies asynchronously (a near cache told by
	// pub/sub), so other servers are polled until they agree. The server
	// that invalidated must agree at once in every case.
	Eventual bool
}

// patience bounds every wait of the suite; generous because the machine
// running the tests may be heavily loaded.
const patience = 20 * time.Second

// Flight is the typed value the suite caches.
type Flight struct {
	ID    int
	Seats int
	Note  string
}

// TestStore runs the conformance suite against the stores servers makes.
func TestStore(t *testing.T, servers Servers, opts Options) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newServer func() cache.Store, opts Options)
	}{
		{"LoadThenHit", testLoadThenHit},
		{"TypedAcrossServers", testTypedAcrossServers},
		{"Invalidate", testInvalidate},
		{"InvalidateTags", testInvalidateTags},
		{"Expiry", testExpiry},
		{"NegativeCaching", testNegative},
		{"LoadErrorNotCached", testLoadError},
		{"Stampede", testStampede},
		{"SlowLoaderAfterInvalidate", testSlowLoader},
		{"ConcurrentWritesNoStaleRead", testConcurrentWrites},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, servers(t), opts)
		})
	}
}

// NewCache returns a typed cache over s with jitter off and a long lease
// wait, so results do not depend on timing.
func NewCache[V any](t testing.TB, s cache.Store) *cache.Cache[V] {
	t.Helper()
	c, err := cache.New(cache.Config[V]{Store: s, Jitter: -1, LeaseWait: patience})
	if err != nil {
		t.Fatalf("cache.New: %v", err)
	}
	return c
}

// counter is a loader that returns a fixed value and counts its calls.
type counter[V any] struct {
	n atomic.Int64
	v V
}

func (c *counter[V]) load(context.Context) (V, error) {
	c.n.Add(1)
	return c.v, nil
}

func mustGet[V any](t testing.TB, c *cache.Cache[V], key string, load cache.Loader[V], opts ...cache.LoadOption) V {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	v, err := c.GetOrLoad(ctx, key, time.Minute, load, opts...)
	if err != nil {
		t.Fatalf("GetOrLoad(%q): %v", key, err)
	}
	return v
}

// eventually polls cond until it holds, failing the test after patience.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", patience, what)
		}
		time.Sleep(wait)
	}
}

func testLoadThenHit(t *testing.T, newServer func() cache.Store, _ Options) {
	c := NewCache[string](t, newServer())
	l := &counter[string]{v: "hello"}
	for i := range 3 {
		if got := mustGet(t, c, "k", l.load); got != "hello" {
			t.Fatalf("call %d: got %q, want %q", i, got, "hello")
		}
	}
	if got := l.n.Load(); got != 1 {
		t.Errorf("loads = %d, want 1", got)
	}
	if v, ok := c.Get(context.Background(), "k"); !ok || v != "hello" {
		t.Errorf("Get = %q, %v; want hello, true", v, ok)
	}
	if _, ok := c.Get(context.Background(), "absent"); ok {
		t.Errorf("Get(absent) ok = true, want false")
	}
	st := c.Stats()
	if st.Loads != 1 || st.Hits < 2 || st.Misses < 1 {
		t.Errorf("stats = %+v, want 1 load, >= 2 hits, >= 1 miss", st)
	}
}

func testTypedAcrossServers(t *testing.T, newServer func() cache.Store, _ Options) {
	a, b := NewCache[Flight](t, newServer()), NewCache[Flight](t, newServer())
	want := Flight{ID: 42, Seats: 7, Note: "Paris → Tokyo"}
	la, lb := &counter[Flight]{v: want}, &counter[Flight]{v: Flight{ID: -1}}
	if got := mustGet(t, a, "flight:42", la.load); got != want {
		t.Fatalf("server a: got %+v, want %+v", got, want)
	}
	if got := mustGet(t, b, "flight:42", lb.load); got != want {
		t.Fatalf("server b: got %+v, want %+v", got, want)
	}
	if la.n.Load() != 1 || lb.n.Load() != 0 {
		t.Errorf("loads a=%d b=%d, want 1 and 0", la.n.Load(), lb.n.Load())
	}
}

func testInvalidate(t *testing.T, newServer func() cache.Store, opts Options) {
	a, b := NewCache[int](t, newServer()), NewCache[int](t, newServer())
	var db atomic.Int64
	db.Store(1)
	load := func(context.Context) (int, error) { return int(db.Load()), nil }
	for _, c := range []*cache.Cache[int]{a, b} {
		if got := mustGet(t, c, "seats", load); got != 1 {
			t.Fatalf("before write: got %d, want 1", got)
		}
	}
	db.Store(2) // the write to the database, then the invalidation
	if err := a.Invalidate(context.Background(), "seats", "never-cached"); err != nil {
		t.Fatalf("Invalidate: %v", err)
	}
	if got := mustGet(t, a, "seats", load); got != 2 {
		t.Fatalf("writer's server after write: got %d, want 2", got)
	}
	agree(t, b, "seats", load, 2, opts)
}

// agree checks that c answers want for key: at once, or within patience for
// an eventual backend.
func agree[V comparable](t *testing.T, c *cache.Cache[V], key string, load cache.Loader[V], want V, opts Options) {
	t.Helper()
	if !opts.Eventual {
		if got := mustGet(t, c, key, load); got != want {
			t.Fatalf("other server after write: got %v, want %v", got, want)
		}
		return
	}
	var got V
	eventually(t, fmt.Sprintf("other server still answers %v for %q, want %v", got, key, want), func() bool {
		got = mustGet(t, c, key, load)
		return got == want
	})
}

func testInvalidateTags(t *testing.T, newServer func() cache.Store, opts Options) {
	a, b := NewCache[string](t, newServer()), NewCache[string](t, newServer())
	var gen atomic.Int64
	load := func(name string) cache.Loader[string] {
		return func(context.Context) (string, error) { return fmt.Sprintf("%s@%d", name, gen.Load()), nil }
	}
	get := func(c *cache.Cache[string], key string, tags ...string) string {
		return mustGet(t, c, key, load(key), cache.WithTags(tags...))
	}
	get(a, "seats:42", "flight:42")
	get(a, "crew:42", "flight:42", "crew")
	get(a, "seats:7", "flight:7")
	get(b, "seats:42", "flight:42")
	gen.Store(1)
	if err := a.InvalidateTags(context.Background(), "flight:42"); err != nil {
		t.Fatalf("InvalidateTags: %v", err)
	}
	for key, want := range map[string]string{"seats:42": "seats:42@1", "crew:42": "crew:42@1", "seats:7": "seats:7@0"} {
		if got := get(a, key); got != want {
			t.Errorf("after tag invalidation, %s = %q, want %q", key, got, want)
		}
	}
	agree(t, b, "seats:42", load("seats:42"), "seats:42@1", opts)
}

func testExpiry(t *testing.T, newServer func() cache.Store, _ Options) {
	c := NewCache[int](t, newServer())
	l := &counter[int]{v: 5}
	ctx := context.Background()
	if _, err := c.GetOrLoad(ctx, "short", 200*time.Millisecond, l.load); err != nil {
		t.Fatalf("GetOrLoad: %v", err)
	}
	eventually(t, "entry with a 200ms TTL never expired", func() bool {
		_, ok := c.Get(ctx, "short")
		return !ok
	})
	if _, err := c.GetOrLoad(ctx, "short", time.Minute, l.load); err != nil {
		t.Fatalf("GetOrLoad after expiry: %v", err)
	}
	if got := l.n.Load(); got != 2 {
		t.Errorf("loads = %d, want 2 (one before expiry, one after)", got)
	}
	if _, err := c.GetOrLoad(ctx, "bad", 0, l.load); !errors.Is(err, cache.ErrInvalidTTL) {
		t.Errorf("ttl 0: err = %v, want ErrInvalidTTL", err)
	}
}

func testNegative(t *testing.T, newServer func() cache.Store, _ Options) {
	c := NewCache[string](t, newServer())
	var n atomic.Int64
	missing := func(context.Context) (string, error) {
		n.Add(1)
		return "", fmt.Errorf("flight 99: %w", cache.ErrNotFound)
	}
	ctx := context.Background()
	for i := range 3 {
		if _, err := c.GetOrLoad(ctx, "flight:99", time.Minute, missing); !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("call %d: err = %v, want ErrNotFound", i, err)
		}
	}
	if got := n.Load(); got != 1 {
		t.Errorf("loads = %d, want 1 (the miss is remembered)", got)
	}
	if _, ok := c.Get(ctx, "flight:99"); ok {
		t.Errorf("Get of a negative entry: ok = true, want false")
	}
	if err := c.Invalidate(ctx, "flight:99"); err != nil {
		t.Fatal(err)
	}
	found := func(context.Context) (string, error) { return "created", nil }
	if got := mustGet(t, c, "flight:99", found); got != "created" {
		t.Errorf("after invalidation got %q, want created", got)
	}
	if st := c.Stats(); st.NegativeHits < 2 {
		t.Errorf("NegativeHits = %d, want >= 2", st.NegativeHits)
	}
}

func testLoadError(t *testing.T, newServer func() cache.Store, _ Options) {
	c := NewCache[string](t, newServer())
	boom := errors.New("database down")
	var n atomic.Int64
	failing := func(context.Context) (string, error) { n.Add(1); return "", boom }
	for i := range 2 {
		if _, err := c.GetOrLoad(context.Background(), "k", time.Minute, failing); !errors.Is(err, boom) {
			t.Fatalf("call %d: err = %v, want %v", i, err, boom)
		}
	}
	if got := n.Load(); got != 2 {
		t.Errorf("loads = %d, want 2 (errors are not cached)", got)
	}
	// The failed load must have given its lease back: the next load runs
	// at once instead of waiting for the lease to expire.
	if got := mustGet(t, c, "k", (&counter[string]{v: "ok"}).load); got != "ok" {
		t.Errorf("after errors got %q, want ok", got)
	}
	if st := c.Stats(); st.LoadErrors != 2 || st.LeaseWaits != 0 {
		t.Errorf("LoadErrors = %d, LeaseWaits = %d; want 2 and 0", st.LoadErrors, st.LeaseWaits)
	}
}
