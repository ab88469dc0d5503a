package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// waitFor polls cond until it holds or a generous deadline passes; the
// machine may be heavily loaded, so the deadline bounds a hang, not speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSenderToHandlerOverHTTP runs a Sender against a Registry mounted on a
// real loopback HTTP server, as an app server and a balancer would.
func TestSenderToHandlerOverHTTP(t *testing.T) {
	t.Parallel()
	pool := newMemPool()
	reg, err := NewRegistry(RegistryConfig{Pool: pool, Token: "e2e-token"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+HeartbeatPath, reg.Handler())
	lb := httptest.NewServer(mux)
	defer lb.Close()

	regCtx, stopReg := context.WithCancel(t.Context())
	regDone := make(chan error, 1)
	go func() { regDone <- reg.Run(regCtx) }()
	defer func() { stopReg(); <-regDone }()

	app := httptest.NewServer(http.NotFoundHandler())
	defer app.Close()
	s, err := NewSender(SenderConfig{
		Balancers: []string{lb.URL}, Self: app.URL, ID: "app-1", Token: "e2e-token",
		Interval: 50 * time.Millisecond, Capacity: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	waitFor(t, "the member to register", func() bool { return pool.state("app-1") == StateReady })
	waitFor(t, "several heartbeats", func() bool { return reg.Stats().Heartbeats >= 3 })
	if m, _ := pool.member("app-1"); m.URL != app.URL || m.Capacity != 10 {
		t.Errorf("pool member %+v: want url %s, capacity 10", m, app.URL)
	}
	if err := s.SetState(StateDraining); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "draining", func() bool { return pool.state("app-1") == StateDraining })

	cancel() // the app's SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v, want nil after leaving", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, ok := pool.member("app-1"); ok {
		t.Errorf("member still in the pool after leaving (calls %v)", pool.log())
	}
	if st := reg.Stats(); st.Leaves != 1 || len(reg.Leases()) != 0 {
		t.Errorf("registry stats %+v, leases %v: want 1 leave and no lease", st, reg.Leases())
	}
	if st := s.Stats(); st.Sent < 4 {
		t.Errorf("sender stats %+v: want at least 4 sent", st)
	}
}
