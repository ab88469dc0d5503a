package redispurge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"scaleout/httpcache"
	"scaleout/internal/testserver"
)

// balancerCache is one balancer's shared cache with its Purger, and a
// client that goes through the cache.
type balancerCache struct {
	cache  *httpcache.Shared
	purger *Purger
	client *http.Client
}

// newOrigin is a real origin whose responses may be stored for a minute
// and are tagged "flights"; it counts the requests that reach it.
func newOrigin(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Surrogate-Key", "flights")
		fmt.Fprintf(w, "n=%d", n.Add(1))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func newClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// newBalancerCache builds a cache and its Purger on channel, and runs the
// Purger until the test ends (run false leaves Run to the test).
func newBalancerCache(t *testing.T, redisAddr, channel string, run bool) *balancerCache {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	cache, err := httpcache.NewShared(httpcache.Config{Next: tr})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Client: newClient(t, redisAddr), Local: cache, Channel: channel, ConfirmTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if run {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	return &balancerCache{cache: cache, purger: p, client: &http.Client{Transport: cache, Timeout: time.Minute}}
}

// waitSubscribers polls Redis until n clients are subscribed to channel.
func waitSubscribers(t *testing.T, addr, channel string, n int64) {
	t.Helper()
	c := newClient(t, addr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := c.PubSubNumSub(context.Background(), channel).Result()
		if err == nil && m[channel] == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d subscribers on %s: got %v, %v", n, channel, m, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fetch GETs url through bc and returns the body and Cache-Status.
func (bc *balancerCache) fetch(t *testing.T, url string) (string, string) {
	t.Helper()
	res, err := bc.client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return string(b), res.Header.Get("Cache-Status")
}

// warm stores url in every cache and checks that each then hits.
func warm(t *testing.T, url string, caches ...*balancerCache) {
	t.Helper()
	for i, bc := range caches {
		bc.fetch(t, url)
		if _, cs := bc.fetch(t, url); !strings.Contains(cs, "hit") {
			t.Fatalf("cache %d: second GET %s has Cache-Status %q, want a hit", i, url, cs)
		}
	}
}

func TestPurgeReachesEveryBalancer(t *testing.T) {
	t.Parallel()
	rs := testserver.Redis(t)
	origin, count := newOrigin(t)
	const channel = "purge-test"
	a := newBalancerCache(t, rs.Addr, channel, true)
	b := newBalancerCache(t, rs.Addr, channel, true)
	waitSubscribers(t, rs.Addr, channel, 2)

	cases := []struct {
		name  string
		from  *balancerCache
		other *balancerCache
		order func(url string) httpcache.Purge
	}{
		{"by URL from a", a, b, func(url string) httpcache.Purge { return httpcache.Purge{URLs: []string{url}} }},
		{"by tag from b", b, a, func(string) httpcache.Purge { return httpcache.Purge{Tags: []string{"flights"}} }},
	}
	for i, tc := range cases {
		url := fmt.Sprintf("%s/flights/%d", origin.URL, i)
		warm(t, url, a, b)
		before := count.Load()
		n, err := tc.from.purger.Purge(context.Background(), tc.order(url))
		if err != nil {
			t.Fatalf("%s: Purge: %v", tc.name, err)
		}
		if n < 2 {
			t.Errorf("%s: Purge removed %d entries, want at least 2 (one per cache)", tc.name, n)
		}
		// The very next request on the other balancer, with no wait.
		body, cs := tc.other.fetch(t, url)
		if !strings.Contains(cs, "fwd=uri-miss") || count.Load() != before+1 {
			t.Errorf("%s: next request on the other balancer: Cache-Status %q, body %q, origin requests %d, want a miss reaching the origin (%d)",
				tc.name, cs, body, count.Load(), before+1)
		}
		if _, cs := tc.from.fetch(t, url); !strings.Contains(cs, "fwd=uri-miss") {
			t.Errorf("%s: next request on the purging balancer: Cache-Status %q, want a miss", tc.name, cs)
		}
	}
}

func TestPurgeHandlerFansOut(t *testing.T) {
	t.Parallel()
	rs := testserver.Redis(t)
	origin, _ := newOrigin(t)
	const channel = "purge-admin"
	a := newBalancerCache(t, rs.Addr, channel, true)
	b := newBalancerCache(t, rs.Addr, channel, true)
	waitSubscribers(t, rs.Addr, channel, 2)
	url := origin.URL + "/x"
	warm(t, url, a, b)
	admin := httptest.NewServer(httpcache.PurgeHandler(a.purger))
	defer admin.Close()
	res, err := http.Post(admin.URL, "application/json", strings.NewReader(`{"urls": ["`+url+`"]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"purged":2`) {
		t.Errorf("admin purge: %d %s, want 200 with 2 purged", res.StatusCode, body)
	}
	if _, cs := b.fetch(t, url); !strings.Contains(cs, "fwd=uri-miss") {
		t.Errorf("after admin purge on a: b's Cache-Status %q, want a miss", cs)
	}
	// A bad URL is refused before anything is published.
	warm(t, url, b)
	res, err = http.Post(admin.URL, "application/json", strings.NewReader(`{"urls": ["::bad"]}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("bad purge URL: status %d, want 400", res.StatusCode)
	}
	if _, cs := b.fetch(t, url); !strings.Contains(cs, "hit") {
		t.Errorf("after a refused purge: b's Cache-Status %q, want a hit", cs)
	}
}

func TestRunIgnoresForeignMessages(t *testing.T) {
	t.Parallel()
	rs := testserver.Redis(t)
	origin, _ := newOrigin(t)
	const channel = "purge-garbage"
	a := newBalancerCache(t, rs.Addr, channel, true)
	b := newBalancerCache(t, rs.Addr, channel, true)
	waitSubscribers(t, rs.Addr, channel, 2)
	c := newClient(t, rs.Addr)
	for _, junk := range []string{"not json", `{"id":"x"}`, `{"id":"x","from":"y","order":{}}`, strings.Repeat("[", 100)} {
		if err := c.Publish(context.Background(), channel, junk).Err(); err != nil {
			t.Fatal(err)
		}
	}
	url := origin.URL + "/y"
	warm(t, url, a, b)
	if _, err := a.purger.Purge(context.Background(), httpcache.Purge{URLs: []string{url}}); err != nil {
		t.Fatalf("Purge after junk on the channel: %v", err)
	}
	if _, cs := b.fetch(t, url); !strings.Contains(cs, "fwd=uri-miss") {
		t.Errorf("after junk then a purge: b's Cache-Status %q, want a miss", cs)
	}
}

func TestPurgeWithoutRedis(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: a server started and stopped.
	rs := testserver.Redis(t)
	addr := rs.Addr
	rs.Stop()
	origin, _ := newOrigin(t)
	a := newBalancerCache(t, addr, "purge-down", false)
	url := origin.URL + "/z"
	warm(t, url, a)
	n, err := a.purger.Purge(context.Background(), httpcache.Purge{URLs: []string{url}})
	if !errors.Is(err, ErrUnconfirmed) {
		t.Errorf("Purge with Redis down: err %v, want ErrUnconfirmed", err)
	}
	if n != 1 {
		t.Errorf("Purge with Redis down removed %d local entries, want 1", n)
	}
	if _, cs := a.fetch(t, url); !strings.Contains(cs, "fwd=uri-miss") {
		t.Errorf("local purge with Redis down: Cache-Status %q, want a miss", cs)
	}
	// Run keeps trying while Redis is away and ends with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := a.purger.Run(ctx); err != nil || ctx.Err() == nil {
		t.Errorf("Run with Redis down: got %v before the context ended (%v), want nil once it ends", err, ctx.Err())
	}
	if a.purger.Subscribed() {
		t.Error("Subscribed() after Run returned: got true, want false")
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	cache, err := httpcache.NewShared(httpcache.Config{Next: http.DefaultTransport})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"complete", Config{Client: c, Local: cache}, true},
		{"no client", Config{Local: cache}, false},
		{"no cache", Config{Client: c}, false},
		{"negative timeout", Config{Client: c, Local: cache, ConfirmTimeout: -time.Second}, false},
	}
	for _, tc := range cases {
		_, err := New(tc.cfg)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadConfig)) {
			t.Errorf("%s: New error %v, want ok=%v or ErrBadConfig", tc.name, err, tc.ok)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(`{"id":"a","from":"b","order":{"urls":["http://h/p"]}}`)
	f.Add(`{"id":"a","from":"b","order":{"tags":["t"]}}`)
	f.Add(`{"id":"","order":{}}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, payload string) {
		m, err := DecodeMessage(payload)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("DecodeMessage(%q): error %v does not wrap ErrBadMessage", payload, err)
			}
			return
		}
		if m.ID == "" || m.From == "" || len(m.Order.URLs)+len(m.Order.Tags) == 0 {
			t.Fatalf("DecodeMessage(%q) accepted %+v", payload, m)
		}
	})
}
