package dbrouter

import (
	"testing"
	"time"
)

func replicas(inflight ...int64) []*Replica {
	var rs []*Replica
	for i, n := range inflight {
		r := &Replica{name: string(rune('a' + i))}
		r.inflight.Store(n)
		rs = append(rs, r)
	}
	return rs
}

func TestPolicies(t *testing.T) {
	t.Parallel()
	const picks = 3000
	tests := []struct {
		name     string
		policy   Policy
		inflight []int64
		check    func(counts map[string]int) bool
		want     string
	}{
		{"p2c never picks the busiest of two", P2C{}, []int64{0, 9},
			func(c map[string]int) bool { return c["b"] == 0 }, "all picks on a"},
		{"p2c never picks the busiest of three", P2C{}, []int64{1, 2, 9},
			func(c map[string]int) bool { return c["c"] == 0 && c["a"] > c["b"] }, "none on c, a > b"},
		{"p2c spreads equal load", P2C{}, []int64{0, 0, 0},
			func(c map[string]int) bool { return c["a"] > picks/6 && c["b"] > picks/6 && c["c"] > picks/6 }, "each above 1/6"},
		{"round robin is exact", &RoundRobin{}, []int64{5, 0, 9},
			func(c map[string]int) bool { return c["a"] == picks/3 && c["b"] == picks/3 && c["c"] == picks/3 }, "1000 each"},
		{"random reaches all", Random{}, []int64{0, 0},
			func(c map[string]int) bool { return c["a"] > picks/4 && c["b"] > picks/4 }, "each above 1/4"},
		{"single candidate", P2C{}, []int64{7},
			func(c map[string]int) bool { return c["a"] == picks }, "all on a"},
	}
	for _, tc := range tests {
		rs := replicas(tc.inflight...)
		counts := map[string]int{}
		for range picks {
			counts[tc.policy.Pick(rs).Name()]++
		}
		if !tc.check(counts) {
			t.Errorf("%s: got %v, want %s", tc.name, counts, tc.want)
		}
	}
}

func TestEjectionBackoff(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	r := &Replica{name: "a"}
	var last time.Duration
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		d := r.markFailure(now, time.Second, 8*time.Second)
		if d < want || d > want+want/4 {
			t.Errorf("failure %d: ejected for %v, want %v plus up to 25%% jitter", i+1, d, want)
		}
		last = d
	}
	if r.available(now.Add(last - time.Millisecond).UnixNano()) {
		t.Error("replica available before its backoff ended")
	}
	if !r.available(now.Add(last).UnixNano()) {
		t.Error("replica not available once its backoff ended")
	}
	r.markSuccess()
	if !r.available(now.UnixNano()) || r.failures.Load() != 0 {
		t.Error("markSuccess did not put the replica back")
	}
}

func TestHeartbeatLag(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	var h heartbeats
	if _, _, ok := h.lag(0, t0); ok {
		t.Fatal("lag known before any beat")
	}
	for i := int64(1); i <= 100; i++ { // more than the ring holds
		h.add(i*2, t0.Add(time.Duration(i)*time.Second), LSN(i*1000))
	}
	tests := []struct {
		seen int64
		at   time.Duration
		want time.Duration
	}{
		{200, 100 * time.Second, 0},                               // replayed the newest beat: no lag however long ago
		{200, time.Hour, 0},                                       // idle primary: still no lag
		{198, 100 * time.Second, 0},                               // beat 100 written at +100s, now +100s
		{198, 101 * time.Second, time.Second},                     // beat 100 waiting 1s
		{150, 101 * time.Second, 25 * time.Second},                // oldest unreplayed: seq 152 at +76s
		{0, 101 * time.Second, 64 * time.Second},                  // older than the ring: its oldest beat (+37s)
		{195, 101 * time.Second, 3 * time.Second},                 // seq 196 at +98s
		{197, 100500 * time.Millisecond, 1500 * time.Millisecond}, // seq 198 at +99s
	}
	for _, tc := range tests {
		got, pos, ok := h.lag(tc.seen, t0.Add(tc.at))
		if !ok || got != tc.want || pos != 100000 {
			t.Errorf("lag(seen %d, at +%v) = %v, %v, %v; want %v, 100000, true", tc.seen, tc.at, got, pos, ok, tc.want)
		}
	}
}
