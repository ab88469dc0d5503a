package httpcache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testClock is a settable clock shared by the cache and the test origin,
// so freshness is tested without sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// origin is a real HTTP server whose handler the test supplies; it counts
// requests and stamps Date from the test clock.
type origin struct {
	srv   *httptest.Server
	count atomic.Int64
	clock *testClock
}

func newOrigin(t *testing.T, clk *testClock, h func(n int64, w http.ResponseWriter, r *http.Request)) *origin {
	t.Helper()
	o := &origin{clock: clk}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := o.count.Add(1)
		w.Header().Set("Date", clk.Now().Format(http.TimeFormat))
		h(n, w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// newTestCache builds a Shared in front of o, and a real client using it.
func newTestCache(t *testing.T, o *origin, mod func(*Config)) (*Shared, *http.Client) {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	cfg := Config{Next: tr, MaxBytes: 8 << 20, Now: o.clock.Now, LockTimeout: time.Minute}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewShared(cfg)
	if err != nil {
		t.Fatalf("NewShared: %v", err)
	}
	return s, &http.Client{Transport: s, Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get sends a request through c and returns the response with its body read.
func get(t *testing.T, c *http.Client, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, string(b)
}

// step is one request of a scenario and what it must get.
type step struct {
	advance    time.Duration // clock moves forward before the request
	method     string        // default GET
	path       string        // default /r
	hdr        []string      // request fields, name/value pairs
	wantStatus int           // default 200
	wantOrigin int64         // origin requests so far, after this step
	wantBody   string        // if set, the body must equal it
	wantCS     string        // if set, Cache-Status must contain it
}

func runSteps(t *testing.T, c *http.Client, o *origin, steps []step) {
	t.Helper()
	for i, st := range steps {
		o.clock.Advance(st.advance)
		method, path, want := st.method, st.path, st.wantStatus
		if method == "" {
			method = http.MethodGet
		}
		if path == "" {
			path = "/r"
		}
		if want == 0 {
			want = http.StatusOK
		}
		res, body := get(t, c, method, o.srv.URL+path, st.hdr...)
		if res.StatusCode != want {
			t.Errorf("step %d: %s %s: got status %d, want %d (Cache-Status %q)", i, method, path, res.StatusCode, want, res.Header.Get("Cache-Status"))
		}
		if got := o.count.Load(); got != st.wantOrigin {
			t.Errorf("step %d: %s %s: got %d origin requests, want %d (Cache-Status %q)", i, method, path, got, st.wantOrigin, res.Header.Get("Cache-Status"))
		}
		if st.wantBody != "" && body != st.wantBody {
			t.Errorf("step %d: got body %q, want %q", i, body, st.wantBody)
		}
		if cs := res.Header.Get("Cache-Status"); st.wantCS != "" && !strings.Contains(cs, st.wantCS) {
			t.Errorf("step %d: got Cache-Status %q, want it to contain %q", i, cs, st.wantCS)
		}
	}
}

// fixed answers every request with the given fields and a body naming the
// request number, so tests can tell which origin response they got.
func fixed(fields ...string) func(int64, http.ResponseWriter, *http.Request) {
	return func(n int64, w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(fields); i += 2 {
			w.Header().Add(fields[i], fields[i+1])
		}
		fmt.Fprintf(w, "n=%d", n)
	}
}
