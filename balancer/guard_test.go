package balancer

import "testing"

func TestGuardKeepsHalfThePool(t *testing.T) {
	t.Parallel()
	b, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		m, _ := NewBackend(id, "http://127.0.0.1:1", 1)
		b.Add(m)
	}
	eligible := func() int { return len(b.snap.Load().eligible) }
	b.SetLeaseExpired("a", true)
	b.SetHealthy("b", false)
	if got := eligible(); got != 2 {
		t.Fatalf("two of four out: %d eligible, want 2", got)
	}
	if b.Stats().GuardActive {
		t.Errorf("guard active with half the pool out, want inactive")
	}
	// A third signal would leave one member: the guard keeps the least
	// bad of the three in rotation (a failing probe beats a dead lease).
	b.SetLeaseExpired("c", true)
	snap := b.snap.Load()
	if len(snap.eligible) != 2 || !b.Stats().GuardActive {
		t.Fatalf("three of four out: %d eligible (guard %v), want 2 with the guard active", len(snap.eligible), b.Stats().GuardActive)
	}
	if !containsBackend(snap.eligible, snap.all[1]) {
		t.Errorf("guard kept %v, want b (probe failing) before the dead leases", snap.eligible)
	}
	b.SetLeaseExpired("a", false)
	b.SetLeaseExpired("c", false)
	b.SetHealthy("b", true)
	if got := eligible(); got != 4 || b.Stats().GuardActive {
		t.Fatalf("all back: %d eligible, guard %v; want 4, inactive", got, b.Stats().GuardActive)
	}
}
