package health

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func hb(id string, st MemberState, interval time.Duration) Heartbeat {
	return Heartbeat{ID: id, URL: "http://127.0.0.1:8081", State: st, IntervalMS: interval.Milliseconds(), Capacity: 8}
}

// startRegistry returns a Registry over a fresh memPool with its Run loop
// started; the loop is stopped and its result checked when the test ends.
func startRegistry(t *testing.T, cfg RegistryConfig) (*Registry, *memPool) {
	t.Helper()
	pool := newMemPool()
	cfg.Pool, cfg.Token = pool, "secret-token"
	r, err := NewRegistry(cfg)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	})
	return r, pool
}

func apply(t *testing.T, r *Registry, h Heartbeat) {
	t.Helper()
	if err := r.Apply(h, time.Now()); err != nil {
		t.Fatalf("Apply(%+v): %v", h, err)
	}
}

// wantState waits for the bubble to settle, then checks member id's state
// in the pool ("" for absent).
func wantState(t *testing.T, p *memPool, id string, want MemberState, when string) {
	t.Helper()
	synctest.Wait()
	if got := p.state(id); got != want {
		t.Fatalf("%s: member %s state %q, want %q (calls %v)", when, id, got, want, p.log())
	}
}

func TestRegistryLeaseExpiresThenGraceRemoves(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		lease    int           // LeaseIntervals
		grace    time.Duration // RegistryConfig.Grace
		wantDown time.Duration // silence after which the member is down
		wantGone time.Duration // silence after which it is removed
	}{
		{"defaults 1s", time.Second, 0, 0, 3 * time.Second, 30 * time.Second},
		{"fast 250ms", 250 * time.Millisecond, 0, 0, 750 * time.Millisecond, 30 * time.Second},
		{"slow 5s: grace is 10 intervals", 5 * time.Second, 0, 0, 15 * time.Second, 50 * time.Second},
		{"custom lease and grace", time.Second, 5, 8 * time.Second, 5 * time.Second, 8 * time.Second},
		{"grace shorter than lease", time.Second, 4, 2 * time.Second, 4 * time.Second, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, pool := startRegistry(t, RegistryConfig{LeaseIntervals: tt.lease, Grace: tt.grace})
				apply(t, r, hb("a", StateReady, tt.interval))
				wantState(t, pool, "a", StateReady, "after the first heartbeat")
				time.Sleep(tt.wantDown - time.Millisecond)
				wantState(t, pool, "a", StateReady, "just before the lease ends")
				time.Sleep(time.Millisecond)
				if tt.wantGone > tt.wantDown {
					wantState(t, pool, "a", StateDown, "when the lease ends")
					time.Sleep(tt.wantGone - tt.wantDown - time.Millisecond)
					wantState(t, pool, "a", StateDown, "just before the grace ends")
					time.Sleep(time.Millisecond)
				}
				wantState(t, pool, "a", "", "when the grace ends")
				s := r.Stats()
				if s.Expiries+s.Removals == 0 || s.Removals != 1 || s.Registrations != 1 {
					t.Errorf("stats %+v: want 1 registration, 1 removal", s)
				}
				if len(r.Leases()) != 0 {
					t.Errorf("Leases() = %v after removal, want none", r.Leases())
				}
			})
		})
	}
}

func TestRegistryHeartbeatsKeepLeaseAndRevive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, pool := startRegistry(t, RegistryConfig{})
		iv := 250 * time.Millisecond
		for range 40 { // 10s of heartbeats, each 1.2 intervals apart (the sender's longest wait)
			apply(t, r, hb("a", StateReady, iv))
			time.Sleep(iv * 12 / 10)
			wantState(t, pool, "a", StateReady, "while heartbeats arrive")
		}
		time.Sleep(2 * time.Second)
		wantState(t, pool, "a", StateDown, "after 2s of silence")
		apply(t, r, hb("a", StateReady, iv))
		wantState(t, pool, "a", StateReady, "after a fresh heartbeat")
		want := []string{"add a", "ready a", "down a", "ready a"}
		if got := pool.log(); !slices.Equal(got, want) {
			t.Errorf("pool calls %v, want %v", got, want)
		}
		if s := r.Stats(); s.Expiries != 1 || s.Recoveries != 1 || s.Heartbeats != 41 {
			t.Errorf("stats %+v: want 1 expiry, 1 recovery, 41 heartbeats", s)
		}
	})
}

func TestRegistryDrainingAndLeaving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, pool := startRegistry(t, RegistryConfig{})
		h := hb("a", StateReady, time.Second)
		h.Seq = 10
		apply(t, r, h)
		h.State, h.Seq, h.InFlight = StateDraining, 11, 5
		apply(t, r, h)
		wantState(t, pool, "a", StateDraining, "after a draining heartbeat")
		if m, _ := pool.member("a"); m.InFlight != 5 {
			t.Errorf("in-flight %d, want 5", m.InFlight)
		}
		h.State, h.Seq = StateLeaving, 12
		apply(t, r, h)
		wantState(t, pool, "a", "", "after leaving")
		// A heartbeat sent before "leaving" but arriving after it must not
		// bring the member back.
		h.State, h.Seq = StateReady, 11
		apply(t, r, h)
		wantState(t, pool, "a", "", "after a late, older heartbeat")
		// A second leaving, older, for the member already gone changes nothing.
		h.State, h.Seq = StateLeaving, 9
		apply(t, r, h)
		h.State, h.Seq = StateReady, 12
		apply(t, r, h)
		wantState(t, pool, "a", "", "after a heartbeat as old as the newest leaving")
		// The same server started again counts on from a higher seq.
		h.Seq = 100
		apply(t, r, h)
		wantState(t, pool, "a", StateReady, "after a newer heartbeat")
		want := []string{"add a", "ready a", "draining a", "remove a", "add a", "ready a"}
		if got := pool.log(); !slices.Equal(got, want) {
			t.Errorf("pool calls %v, want %v", got, want)
		}
		if s := r.Stats(); s.Stale != 2 || s.Leaves != 2 || s.Members[StateReady] != 1 {
			t.Errorf("stats %+v: want 2 stale, 2 leaves, 1 ready member", s)
		}
	})
}

// An operator's drain through the admin API (a SetState the registry did
// not make) must survive the member's routine "ready" heartbeats.
func TestRegistryKeepsOperatorState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, pool := startRegistry(t, RegistryConfig{})
		apply(t, r, hb("a", StateReady, time.Second))
		if err := pool.SetState("a", StateDraining); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			time.Sleep(time.Second)
			apply(t, r, hb("a", StateReady, time.Second))
		}
		wantState(t, pool, "a", StateDraining, "after ready heartbeats")
	})
}

func TestRegistryPoolRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, pool := startRegistry(t, RegistryConfig{})
		pool.refuse = errRefusedForTest
		if err := r.Apply(hb("a", StateReady, time.Second), time.Now()); err == nil {
			t.Fatal("Apply with a refusing pool: got nil error")
		}
		if n := len(r.Leases()); n != 0 {
			t.Errorf("%d leases after a refused heartbeat, want 0", n)
		}
		if s := r.Stats(); s.Rejected["pool"] != 1 || s.Heartbeats != 0 {
			t.Errorf("stats %+v: want 1 pool rejection, 0 heartbeats", s)
		}
	})
}

func TestNewRegistryConfigErrors(t *testing.T) {
	pool := newMemPool()
	tests := []struct {
		name string
		cfg  RegistryConfig
	}{
		{"no pool", RegistryConfig{Token: "x"}},
		{"no token", RegistryConfig{Pool: pool}},
		{"negative lease", RegistryConfig{Pool: pool, Token: "x", LeaseIntervals: -1}},
		{"negative grace", RegistryConfig{Pool: pool, Token: "x", Grace: -time.Second}},
		{"max below min", RegistryConfig{Pool: pool, Token: "x", MinInterval: time.Second, MaxInterval: time.Millisecond}},
		{"tiny body", RegistryConfig{Pool: pool, Token: "x", MaxBodyBytes: 10}},
	}
	for _, tt := range tests {
		if _, err := NewRegistry(tt.cfg); err == nil {
			t.Errorf("%s: NewRegistry returned nil error", tt.name)
		}
	}
}
