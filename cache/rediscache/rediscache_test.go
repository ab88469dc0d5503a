package rediscache_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"scaleout/cache"
	"scaleout/cache/cachetest"
	"scaleout/cache/rediscache"
	"scaleout/internal/testserver"
)

// newClient returns a client of addr, closed when the test ends. Protocol 2
// and no CLIENT SETINFO: the embedded server speaks RESP2 only.
func newClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true,
		MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// ServersAt makes one Store per app server, each with its own client of
// the Redis at addr().
func ServersAt(addr func(t testing.TB) string) cachetest.Servers {
	return func(t testing.TB) func() cache.Store {
		a := addr(t)
		return func() cache.Store {
			s, err := rediscache.New(rediscache.Config{Client: newClient(t, a)})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
}

func realRedis(t testing.TB) string { return testserver.Redis(t).Addr }

func TestConformanceRedis(t *testing.T) {
	t.Parallel()
	cachetest.TestStore(t, ServersAt(realRedis), cachetest.Options{})
}

func BenchmarkHitRedis(b *testing.B)      { cachetest.BenchmarkHit(b, ServersAt(realRedis)) }
func BenchmarkStampedeRedis(b *testing.B) { cachetest.BenchmarkStampede(b, ServersAt(realRedis)) }

// TestRedisDown: with Redis gone, reads fall back to the loader, count a
// store error and log one line; nothing cached is served.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := testserver.Redis(t)
	store, err := rediscache.New(rediscache.Config{Client: newClient(t, srv.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	c, err := cache.New(cache.Config[string]{Store: store, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db := "v1"
	load := func(context.Context) (string, error) { return db, nil }
	if v, err := c.GetOrLoad(ctx, "k", time.Minute, load); err != nil || v != "v1" {
		t.Fatalf("with redis up: %q, %v", v, err)
	}
	srv.Kill()
	db = "v2"
	for i := range 3 {
		v, err := c.GetOrLoad(ctx, "k", time.Minute, load)
		if err != nil || v != "v2" {
			t.Fatalf("read %d with redis down = %q, %v; want v2 from the loader", i, v, err)
		}
	}
	st := c.Stats()
	if st.StoreErrors == 0 || st.Loads != 4 {
		t.Errorf("stats = %+v; want store errors and 4 loads", st)
	}
	// At most one line a second: fewer lines than errors, at least one.
	if n := strings.Count(logs.String(), "cache store unavailable"); n == 0 || uint64(n) > st.StoreErrors {
		t.Errorf("log lines about the store = %d for %d errors, want 1..errors:\n%s", n, st.StoreErrors, logs.String())
	}
	if err := c.Invalidate(ctx, "k"); err == nil {
		t.Errorf("Invalidate with redis down: err = nil, want an error")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	if _, err := rediscache.New(rediscache.Config{}); !errors.Is(err, rediscache.ErrNoClient) {
		t.Errorf("no client: err = %v, want ErrNoClient", err)
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := rediscache.New(rediscache.Config{Client: c, LeaseTTL: -1}); !errors.Is(err, cache.ErrInvalidTTL) {
		t.Errorf("negative lease: err = %v, want ErrInvalidTTL", err)
	}
}

func TestParseInvalidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		name    string
		tag, ok bool
	}{
		{"k:flight:42", "flight:42", false, true},
		{"t:flight:42", "flight:42", true, true},
		{"k:", "", false, true},
		{"x:1", "", false, false},
		{"", "", false, false},
	}
	for _, tt := range tests {
		name, tag, err := rediscache.ParseInvalidation(tt.in)
		if (err == nil) != tt.ok || name != tt.name || tag != tt.tag {
			t.Errorf("ParseInvalidation(%q) = %q, %v, %v; want %q, %v, ok=%v", tt.in, name, tag, err, tt.name, tt.tag, tt.ok)
		}
	}
}

// TestCorruptEntryIsAMiss: a value another program wrote under the cache's
// key is ignored and replaced, not served and not an error.
func TestCorruptEntryIsAMiss(t *testing.T) {
	t.Parallel()
	cl := newClient(t, realRedis(t))
	store, _ := rediscache.New(rediscache.Config{Client: cl, Prefix: "p:"})
	ctx := context.Background()
	if err := cl.Set(ctx, "p:v:k", "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c := cachetest.NewCache[string](t, store)
	v, err := c.GetOrLoad(ctx, "k", time.Minute, func(context.Context) (string, error) { return "fresh", nil })
	if err != nil || v != "fresh" {
		t.Errorf("got %q, %v; want fresh", v, err)
	}
}
