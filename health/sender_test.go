package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// handlerTransport answers requests in memory with a real handler (the
// Registry's), recording when each arrived, so the sender's loop can run
// inside a synctest bubble where real sockets would not be durably blocked.
type handlerTransport struct {
	h  http.Handler
	mu sync.Mutex
	at map[string][]time.Time // by URL host
}

func (t *handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	if t.at == nil {
		t.at = map[string][]time.Time{}
	}
	t.at[req.URL.Host] = append(t.at[req.URL.Host], time.Now())
	t.mu.Unlock()
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, req)
	return w.Result(), nil
}

func (t *handlerTransport) arrivals(host string) []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]time.Time(nil), t.at[host]...)
}

func TestSenderJitteredLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, pool := startRegistry(t, RegistryConfig{})
		tr := &handlerTransport{h: reg.Handler()}
		s, err := NewSender(SenderConfig{
			Balancers: []string{"http://lb1:9090", "http://lb2:9090/"},
			Self:      "http://127.0.0.1:8081", Token: "secret-token", Capacity: 32,
			HTTPClient: &http.Client{Transport: tr},
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(20 * time.Second)
		synctest.Wait()
		for _, host := range []string{"lb1:9090", "lb2:9090"} {
			at := tr.arrivals(host)
			if first := at[0].Sub(start); first >= time.Second {
				t.Errorf("%s: first heartbeat after %v, want within one interval", host, first)
			}
			for i := 1; i < len(at); i++ {
				if gap := at[i].Sub(at[i-1]); gap < 800*time.Millisecond || gap > 1200*time.Millisecond {
					t.Errorf("%s: gap %d is %v, want 0.8s to 1.2s", host, i, gap)
				}
			}
			if n := len(at); n < 16 || n > 26 {
				t.Errorf("%s: %d heartbeats in 20s at 1s, want 16 to 26", host, n)
			}
		}
		if a, b := tr.arrivals("lb1:9090"), tr.arrivals("lb2:9090"); a[0].Equal(b[0]) && a[1].Equal(b[1]) {
			t.Error("both balancers got heartbeats at the same instants: no jitter")
		}
		if m, ok := pool.member("127.0.0.1:8081"); !ok || m.State != StateReady || m.Capacity != 32 {
			t.Errorf("pool member %+v (present %v), want ready with capacity 32", m, ok)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v, want nil", err)
		}
		wantState(t, pool, "127.0.0.1:8081", "", "after Run's context ended")
		if st := reg.Stats(); st.Leaves != 2 || st.Stale != 0 {
			t.Errorf("registry stats %+v: want 2 leaves (both balancer URLs reach this registry), no stale", st)
		}
	})
}

func TestSenderReportsInFlightAndDraining(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, pool := startRegistry(t, RegistryConfig{})
		s, err := NewSender(SenderConfig{
			Balancers: []string{"http://lb:9090"}, Self: "http://127.0.0.1:8081", ID: "app-1",
			Token: "secret-token", Interval: 250 * time.Millisecond,
			HTTPClient: &http.Client{Transport: &handlerTransport{h: reg.Handler()}},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()

		release := make(chan struct{})
		app := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { app.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) })
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if m, _ := pool.member("app-1"); m.InFlight != 3 || m.State != StateReady {
			t.Errorf("pool member %+v: want ready with in-flight 3", m)
		}
		close(release)
		wg.Wait()

		// Draining is announced at once, not at the next tick.
		before := time.Now()
		if err := s.SetState(StateDraining); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if time.Since(before) != 0 || pool.state("app-1") != StateDraining {
			t.Errorf("after SetState(draining): state %q at +%v, want draining at once", pool.state("app-1"), time.Since(before))
		}
		if err := s.SetState(StateLeaving); err == nil {
			t.Error("SetState(leaving): nil error")
		}
		time.Sleep(time.Second)
		if m, _ := pool.member("app-1"); m.InFlight != 0 {
			t.Errorf("in-flight %d after the requests finished, want 0", m.InFlight)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		wantState(t, pool, "app-1", "", "after leaving")
	})
}

func TestSenderWrongTokenIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, pool := startRegistry(t, RegistryConfig{})
		s, err := NewSender(SenderConfig{
			Balancers: []string{"http://lb:9090"}, Self: "http://127.0.0.1:8081", Token: "not-the-token",
			HTTPClient: &http.Client{Transport: &handlerTransport{h: reg.Handler()}},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := s.Run(ctx); !errors.Is(err, ErrRefused) {
			t.Errorf("Run: %v, want ErrRefused for the leaving heartbeat", err)
		}
		if st := s.Stats(); st.Sent != 0 || st.Failed < 4 {
			t.Errorf("sender stats %+v: want nothing sent, failures counted", st)
		}
		if calls := pool.log(); len(calls) != 0 {
			t.Errorf("pool calls %v, want none", calls)
		}
	})
}

func TestNewSenderConfigErrors(t *testing.T) {
	ok := SenderConfig{Balancers: []string{"http://127.0.0.1:9090"}, Self: "http://127.0.0.1:8081", Token: "t"}
	tests := []struct {
		name string
		edit func(*SenderConfig)
	}{
		{"no balancers", func(c *SenderConfig) { c.Balancers = nil }},
		{"balancer not a URL", func(c *SenderConfig) { c.Balancers = []string{"127.0.0.1:9090"} }},
		{"self without port", func(c *SenderConfig) { c.Self = "http://127.0.0.1" }},
		{"odd id", func(c *SenderConfig) { c.ID = "a b" }},
		{"no token", func(c *SenderConfig) { c.Token = "" }},
		{"token with newline", func(c *SenderConfig) { c.Token = "a\nb" }},
		{"interval too short", func(c *SenderConfig) { c.Interval = time.Millisecond }},
		{"negative capacity", func(c *SenderConfig) { c.Capacity = -1 }},
		{"weight too big", func(c *SenderConfig) { c.Weight = 1001 }},
	}
	if _, err := NewSender(ok); err != nil {
		t.Fatalf("NewSender(valid): %v", err)
	}
	for _, tt := range tests {
		c := ok
		tt.edit(&c)
		if _, err := NewSender(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: NewSender error %v, want ErrConfig", tt.name, err)
		}
	}
}
