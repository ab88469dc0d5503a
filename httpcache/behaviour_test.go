package httpcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A response that only one user may see must never reach another, however
// the requests are ordered.
func TestPrivacy(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	o := newOrigin(t, clk, func(n int64, w http.ResponseWriter, r *http.Request) {
		user := r.Header.Get("Cookie") + r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/private":
			w.Header().Set("Cache-Control", "private, max-age=600")
		case "/auth":
			w.Header().Set("Cache-Control", "max-age=600")
		case "/cookie":
			w.Header().Set("Cache-Control", "public, max-age=600")
			w.Header().Set("Vary", "Cookie")
		}
		fmt.Fprintf(w, "page of %q", user)
	})
	_, c := newTestCache(t, o, nil)
	for _, path := range []string{"/private", "/auth", "/cookie"} {
		for round := range 2 {
			for _, user := range []string{"alice", "bob"} {
				hdr := []string{"Cookie", "sid=" + user}
				if path == "/auth" {
					hdr = []string{"Authorization", "Bearer " + user}
				}
				_, body := get(t, c, http.MethodGet, o.srv.URL+path, hdr...)
				if !strings.Contains(body, user) {
					t.Errorf("%s round %d: %s got %q", path, round, user, body)
				}
			}
		}
	}
	// Vary: Cookie still caches per user.
	before := o.count.Load()
	get(t, c, http.MethodGet, o.srv.URL+"/cookie", "Cookie", "sid=alice")
	if got := o.count.Load(); got != before {
		t.Errorf("Vary: Cookie variant for alice not reused: origin requests %d, want %d", got, before)
	}
}

// Concurrent misses for one key reach the origin once.
func TestCollapsedMisses(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	release := make(chan struct{})
	o := newOrigin(t, clk, func(n int64, w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "n=%d", n)
	})
	s, c := newTestCache(t, o, nil)
	const clients = 20
	var wg sync.WaitGroup
	bodies := make([]string, clients)
	for i := range clients {
		wg.Go(func() {
			res, err := c.Get(o.srv.URL + "/hot")
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			bodies[i] = string(b)
		})
	}
	// Release the origin once the followers are waiting on the leader
	// (polled, with a generous deadline for a loaded machine).
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && (o.count.Load() < 1 || waiting(s) < 1) {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if got := o.count.Load(); got != 1 {
		t.Errorf("got %d origin requests for %d concurrent clients, want 1", got, clients)
	}
	for i, b := range bodies {
		if b != "n=1" {
			t.Errorf("client %d got %q, want n=1", i, b)
		}
	}
	if st := s.Stats(); st.Collapsed == 0 {
		t.Errorf("got Stats.Collapsed 0, want > 0 (%+v)", st)
	}
}

func waiting(s *Shared) int {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	return len(s.flights)
}

// Purges by URL and by tag are visible on the very next request.
func TestPurge(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	o := newOrigin(t, clk, func(n int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "all "+strings.TrimPrefix(r.URL.Path, "/"))
		w.Header().Set("Vary", "Accept")
		fmt.Fprintf(w, "n=%d", n)
	})
	s, c := newTestCache(t, o, nil)
	for _, p := range []string{"/a", "/b", "/c"} {
		res, _ := get(t, c, http.MethodGet, o.srv.URL+p, "Accept", "text/html")
		if res.Header.Get("Surrogate-Key") != "" {
			t.Errorf("Surrogate-Key reached the client: %q", res.Header.Get("Surrogate-Key"))
		}
		get(t, c, http.MethodGet, o.srv.URL+p, "Accept", "application/json")
	}
	if got := o.count.Load(); got != 6 {
		t.Fatalf("setup: got %d origin requests, want 6", got)
	}
	n, err := s.PurgeURL(o.srv.URL + "/a")
	if err != nil || n != 3 { // two variants and the Vary marker
		t.Errorf("PurgeURL: got %d, %v; want 3 entries", n, err)
	}
	get(t, c, http.MethodGet, o.srv.URL+"/a", "Accept", "text/html")
	if got := o.count.Load(); got != 7 {
		t.Errorf("after PurgeURL: got %d origin requests, want 7", got)
	}
	if n := s.PurgeTag("b"); n != 2 {
		t.Errorf("PurgeTag(b): got %d, want 2", n)
	}
	get(t, c, http.MethodGet, o.srv.URL+"/b", "Accept", "text/html")
	get(t, c, http.MethodGet, o.srv.URL+"/c", "Accept", "text/html")
	if got := o.count.Load(); got != 8 {
		t.Errorf("after PurgeTag: got %d origin requests, want 8", got)
	}
	if n := s.PurgeTag("all"); n != 4 { // a and b once each, c twice
		t.Errorf("PurgeTag(all): got %d, want 4", n)
	}
	for _, bad := range []string{"/relative", "ftp://x/y", "http://%zz"} {
		if _, err := s.PurgeURL(bad); !errors.Is(err, ErrBadPurge) {
			t.Errorf("PurgeURL(%q): got %v, want ErrBadPurge", bad, err)
		}
	}
}

// stale-while-revalidate answers at once and revalidates in Run.
func TestStaleWhileRevalidate(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	o := newOrigin(t, clk, fixed("Cache-Control", "max-age=1, stale-while-revalidate=60"))
	s, c := newTestCache(t, o, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !s.running.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	runSteps(t, c, o, []step{{wantOrigin: 1, wantBody: "n=1"}})
	clk.Advance(5 * time.Second)
	res, body := get(t, c, http.MethodGet, o.srv.URL+"/r")
	if body != "n=1" || !strings.Contains(res.Header.Get("Cache-Status"), "stale-while-revalidate") {
		t.Errorf("stale answer: got %q, Cache-Status %q", body, res.Header.Get("Cache-Status"))
	}
	for time.Now().Before(deadline) && s.Stats().Stored < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	_, body = get(t, c, http.MethodGet, o.srv.URL+"/r")
	if body != "n=2" || o.count.Load() != 2 {
		t.Errorf("after background revalidation: got %q and %d origin requests, want n=2 and 2", body, o.count.Load())
	}
	if err := s.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: got %v, want ErrRunning", err)
	}
}

// Without Run, the stale response is revalidated in the request.
func TestStaleWhileRevalidateWithoutRun(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	o := newOrigin(t, clk, fixed("Cache-Control", "max-age=1, stale-while-revalidate=60"))
	_, c := newTestCache(t, o, nil)
	runSteps(t, c, o, []step{{wantOrigin: 1}, {advance: 5 * time.Second, wantOrigin: 2, wantBody: "n=2"}})
}

// A body larger than MaxEntryBytes streams through and is not stored; one
// that fits is stored even without Content-Length.
func TestLargeBodyPassesThrough(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	o := newOrigin(t, clk, func(n int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		size := 100
		if r.URL.Path == "/big" {
			size = 64 << 10
		}
		w.(http.Flusher).Flush() // chunked: no Content-Length
		w.Write([]byte(strings.Repeat("x", size)))
	})
	s, c := newTestCache(t, o, func(c *Config) { c.MaxEntryBytes = 16 << 10 })
	for range 2 {
		if _, body := get(t, c, http.MethodGet, o.srv.URL+"/big"); len(body) != 64<<10 {
			t.Fatalf("big body: got %d bytes, want %d", len(body), 64<<10)
		}
		get(t, c, http.MethodGet, o.srv.URL+"/small")
	}
	if got := o.count.Load(); got != 3 {
		t.Errorf("got %d origin requests, want 3 (big twice, small once)", got)
	}
	if st := s.Stats(); st.Stored != 1 {
		t.Errorf("got %d stored, want 1", st.Stored)
	}
}

// The memory bound holds under many distinct entries.
func TestMemoryBound(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	o := newOrigin(t, clk, func(n int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write([]byte(strings.Repeat("y", 4<<10)))
	})
	const limit = 256 << 10
	s, c := newTestCache(t, o, func(c *Config) { c.MaxBytes = limit })
	for i := range 300 {
		get(t, c, http.MethodGet, fmt.Sprintf("%s/e%d", o.srv.URL, i))
	}
	s.store.CleanUp()
	st := s.Stats()
	if st.Bytes > limit {
		t.Errorf("got %d bytes held, want at most %d", st.Bytes, limit)
	}
	if st.Evicted == 0 || st.Entries == 0 {
		t.Errorf("got %+v, want evictions and some entries", st)
	}
	s.idx.mu.Lock()
	indexed := len(s.idx.byPrimary)
	s.idx.mu.Unlock()
	if indexed > st.Entries+1 {
		t.Errorf("index holds %d primaries for %d entries: deletions not unlinked", indexed, st.Entries)
	}
}

// Origin errors without stale-if-error reach the client as errors, and an
// unreachable origin is an error, not a panic.
func TestOriginDown(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	next := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return nil, errors.New("connection refused")
	})
	s, err := NewShared(Config{Next: next})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/x", nil)
	if _, err := s.RoundTrip(req); err == nil {
		t.Errorf("got nil error from an unreachable origin")
	}
	// The flight must have ended: a second request is not stuck.
	if _, err := s.RoundTrip(req); err == nil || calls.Load() != 2 {
		t.Errorf("second request: got %v after %d calls, want an error after 2", err, calls.Load())
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNewSharedValidates(t *testing.T) {
	t.Parallel()
	next := roundTripperFunc(func(*http.Request) (*http.Response, error) { return nil, nil })
	cases := []Config{
		{},
		{Next: next, MaxBytes: -1},
		{Next: next, MaxBytes: 1 << 20, MaxEntryBytes: 2 << 20},
		{Next: next, Name: "bad name"},
		{Next: next, LockTimeout: -time.Second},
	}
	for i, cfg := range cases {
		if _, err := NewShared(cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("case %d: got %v, want ErrBadConfig", i, err)
		}
	}
}

// The admin API's purge endpoint, over HTTP, then the very next request.
func TestPurgeHandler(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	o := newOrigin(t, clk, fixed("Cache-Control", "max-age=600", "Cache-Tag", "t1,t2"))
	s, c := newTestCache(t, o, nil)
	admin := httptest.NewServer(PurgeHandler(s))
	defer admin.Close()
	post := func(body string) (int, string) {
		res, err := admin.Client().Post(admin.URL+"/api/cache/purge", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	runSteps(t, c, o, []step{{wantOrigin: 1}, {path: "/x", wantOrigin: 2}, {wantOrigin: 2}})
	cases := []struct {
		body     string
		want     int
		contains string
	}{
		{`{"urls": ["` + o.srv.URL + `/r"]}`, 200, `"purged":1`},
		{`{"tags": ["t2"]}`, 200, `"purged":1`},
		{`{"urls": ["not a url"]}`, 400, "absolute"},
		{`{"url": "x"}`, 400, "unknown field"},
		{`{}`, 400, "no urls"},
		{`[`, 400, "not"},
	}
	for _, tc := range cases {
		code, body := post(tc.body)
		if code != tc.want || !strings.Contains(body, tc.contains) {
			t.Errorf("POST %s: got %d %q, want %d containing %q", tc.body, code, body, tc.want, tc.contains)
		}
	}
	runSteps(t, c, o, []step{{wantOrigin: 3, wantBody: "n=3"}, {path: "/x", wantOrigin: 4}})
	res, err := admin.Client().Get(admin.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: got %d, want 405", res.StatusCode)
	}
}

// Neither the constructor nor the request path leaves goroutines behind:
// background work belongs to Run. Not parallel, so the count is stable.
func TestNoGoroutinesOutsideRun(t *testing.T) {
	next := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		h := http.Header{"Cache-Control": {"max-age=60"}}
		return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader("ok")), ContentLength: 2, Request: r}, nil
	})
	before := runtime.NumGoroutine()
	s, err := NewShared(Config{Next: next, MaxBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 { // enough to fill the bound and make otter evict
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://app.test/%d", i%300), nil)
		res, err := s.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("got %d goroutines after NewShared and 500 requests, had %d before", after, before)
	}
	if st := s.Stats(); st.Hits == 0 || st.Stored == 0 {
		t.Errorf("got %+v, want hits and stores", st)
	}
}

// Concurrent requests for one stale entry send one conditional request.
func TestCollapsedRevalidation(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	release := make(chan struct{})
	o := newOrigin(t, clk, func(n int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"same"`)
		if r.Header.Get("If-None-Match") == `"same"` {
			<-release
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "body")
	})
	s, c := newTestCache(t, o, nil)
	runSteps(t, c, o, []step{{wantOrigin: 1}})
	clk.Advance(time.Minute)
	const clients = 10
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			res, err := c.Get(o.srv.URL + "/r")
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(b) != "body" {
				t.Errorf("client %d: got %q", i, b)
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && o.count.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the rest queue on the flight; not needed for correctness
	close(release)
	wg.Wait()
	if got := o.count.Load(); got != 2 {
		t.Errorf("got %d origin requests, want 2 (one fetch, one revalidation)", got)
	}
	if st := s.Stats(); st.Revalidations != 1 {
		t.Errorf("got %d revalidations, want 1", st.Revalidations)
	}
}

// The handler form: a real server in front, an origin that goes away.
func TestHandlerOriginDown(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	o := newOrigin(t, clk, fixed("Cache-Control", "max-age=60"))
	target := o.srv.Listener.Addr().String()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	s, err := NewShared(Config{Now: clk.Now, Next: roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		r.URL.Host = target
		return tr.RoundTrip(r)
	})})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(s.Handler())
	defer front.Close()
	fc := front.Client()
	res, body := get(t, fc, http.MethodGet, front.URL+"/page")
	if res.StatusCode != 200 || body != "n=1" || res.Header.Get("Content-Length") != "3" {
		t.Fatalf("first: got %d %q Content-Length %q", res.StatusCode, body, res.Header.Get("Content-Length"))
	}
	o.srv.Close()
	res, body = get(t, fc, http.MethodGet, front.URL+"/page")
	if res.StatusCode != 200 || body != "n=1" || res.Header.Get("Age") == "" {
		t.Errorf("fresh hit with origin down: got %d %q Age %q", res.StatusCode, body, res.Header.Get("Age"))
	}
	res, _ = get(t, fc, http.MethodGet, front.URL+"/other")
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(res.Header.Get("Cache-Status"), "origin-error") {
		t.Errorf("miss with origin down: got %d, Cache-Status %q", res.StatusCode, res.Header.Get("Cache-Status"))
	}
	res, _ = get(t, fc, http.MethodHead, front.URL+"/page")
	if res.StatusCode != 200 || res.ContentLength != 3 {
		t.Errorf("HEAD hit: got %d, length %d", res.StatusCode, res.ContentLength)
	}
}
