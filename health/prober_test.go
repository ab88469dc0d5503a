package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// statusRecorder is a StatusSetter that records each call in order.
type statusRecorder struct {
	mu    sync.Mutex
	calls []string
}

func (s *statusRecorder) SetHealthy(id string, healthy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := "down"
	if healthy {
		v = "up"
	}
	s.calls = append(s.calls, id+" "+v)
}

func (s *statusRecorder) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

type staticTargets []Target

func (t staticTargets) Targets() []Target { return slices.Clone(t) }

// appHealth is an in-memory app server's /healthz whose answer the test
// flips; it counts probes and the most that ran at once.
type appHealth struct {
	status       atomic.Int32 // 0: no connection
	n, cur, peak atomic.Int32
	hold         time.Duration
}

func (a *appHealth) RoundTrip(req *http.Request) (*http.Response, error) {
	a.n.Add(1)
	c := a.cur.Add(1)
	defer a.cur.Add(-1)
	for p := a.peak.Load(); c > p && !a.peak.CompareAndSwap(p, c); p = a.peak.Load() {
	}
	if req.URL.Path != "/healthz" {
		return nil, errors.New("wrong path " + req.URL.Path)
	}
	if a.hold > 0 {
		select {
		case <-time.After(a.hold):
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	code := int(a.status.Load())
	if code == 0 {
		return nil, errors.New("connection refused")
	}
	w := httptest.NewRecorder()
	w.WriteHeader(code)
	return w.Result(), nil
}

func TestProberRiseAndFall(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		expect     int
		bad        int32 // the status (0: no connection) that fails
		good       int32
	}{
		{"defaults, refused", 0, 0, 0, 0, 200},
		{"defaults, 503", 0, 0, 0, 503, 204},
		{"redirect passes by default", 0, 0, 0, 500, 302},
		{"expect 204 only", 1, 1, 204, 200, 204},
		{"rise 4 fall 2", 4, 2, 0, 404, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				app := &appHealth{}
				app.status.Store(tt.good)
				rec := &statusRecorder{}
				p, err := NewProber(ProberConfig{
					Targets: staticTargets{{ID: "a", URL: "http://127.0.0.1:8081/"}}, Status: rec,
					Rise: tt.rise, Fall: tt.fall, ExpectStatus: tt.expect,
					HTTPClient: &http.Client{Transport: app},
				})
				if err != nil {
					t.Fatal(err)
				}
				rise, fall := orDefault(tt.rise, 2), orDefault(tt.fall, 3)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- p.Run(ctx) }()
				rounds := func(n int) { // each round comes 0.8 to 1.2 intervals after the last
					for range n {
						before := app.n.Load()
						for app.n.Load() == before {
							time.Sleep(100 * time.Millisecond)
						}
						synctest.Wait()
					}
				}
				want := func(when string, calls ...string) {
					t.Helper()
					if got := rec.log(); !slices.Equal(got, calls) {
						t.Fatalf("%s: calls %v, want %v", when, got, calls)
					}
				}
				rounds(rise - 1)
				want("before the first verdict")
				rounds(1)
				want("after the first verdict", "a up")
				rounds(2)
				want("while healthy", "a up")
				app.status.Store(tt.bad)
				rounds(fall - 1)
				want("before the fall threshold", "a up")
				rounds(1)
				want("at the fall threshold", "a up", "a down")
				app.status.Store(tt.good)
				rounds(rise - 1)
				want("before the rise threshold", "a up", "a down")
				rounds(1)
				want("at the rise threshold", "a up", "a down", "a up")
				if st := p.Stats(); st.Transitions != 3 || st.Unhealthy != 0 || st.Failures != uint64(fall) {
					t.Errorf("stats %+v: want 3 verdicts, %d failures", st, fall)
				}
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
		})
	}
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func TestProberBoundsConcurrencyAndTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app := &appHealth{hold: 5 * time.Second} // longer than the timeout: every probe fails
		app.status.Store(200)
		var targets staticTargets
		for i := range 20 {
			targets = append(targets, Target{ID: string(rune('a' + i)), URL: "http://127.0.0.1:8081"})
		}
		rec := &statusRecorder{}
		p, err := NewProber(ProberConfig{Targets: targets, Status: rec, Concurrency: 4, Fall: 1, HTTPClient: &http.Client{Transport: app}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		time.Sleep(8 * time.Second) // first round within 2s, then 5 waves of 1s timeouts
		synctest.Wait()
		cancel()
		<-done
		if peak := app.peak.Load(); peak != 4 {
			t.Errorf("peak concurrent probes %d, want 4", peak)
		}
		if n := len(rec.log()); n != 20 {
			t.Errorf("%d targets marked down after timing out, want 20", n)
		}
	})
}

// TestProberOverHTTP probes a real loopback server whose health the test
// flips, outside any bubble.
func TestProberOverHTTP(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	healthy.Store(true)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" && healthy.Load() {
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer app.Close()
	rec := &statusRecorder{}
	p, err := NewProber(ProberConfig{
		Targets: staticTargets{{ID: "app", URL: app.URL}}, Status: rec, Path: "/ready",
		Interval: 20 * time.Millisecond, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go p.Run(ctx)
	waitFor(t, "the first verdict", func() bool { return len(rec.log()) == 1 })
	healthy.Store(false)
	waitFor(t, "the fall", func() bool { return len(rec.log()) == 2 })
	healthy.Store(true)
	waitFor(t, "the rise", func() bool { return len(rec.log()) == 3 })
	if got := rec.log(); !slices.Equal(got, []string{"app up", "app down", "app up"}) {
		t.Errorf("calls %v, want [app up app down app up]", got)
	}
}

func TestNewProberConfigErrors(t *testing.T) {
	ok := ProberConfig{Targets: staticTargets{}, Status: &statusRecorder{}}
	tests := []struct {
		name string
		edit func(*ProberConfig)
	}{
		{"no targets", func(c *ProberConfig) { c.Targets = nil }},
		{"no status", func(c *ProberConfig) { c.Status = nil }},
		{"relative path", func(c *ProberConfig) { c.Path = "healthz" }},
		{"negative rise", func(c *ProberConfig) { c.Rise = -1 }},
		{"bad status", func(c *ProberConfig) { c.ExpectStatus = 42 }},
		{"tiny interval", func(c *ProberConfig) { c.Interval = time.Microsecond }},
	}
	if _, err := NewProber(ok); err != nil {
		t.Fatalf("NewProber(valid): %v", err)
	}
	for _, tt := range tests {
		c := ok
		tt.edit(&c)
		if _, err := NewProber(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: NewProber error %v, want ErrConfig", tt.name, err)
		}
	}
}
