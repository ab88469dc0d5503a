package balancer

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func TestHashSameKeySameMember(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key     string
		request func(k int) *Request // the k-th distinct key
	}{
		{"ip", func(k int) *Request { return policyRequest("/", fmt.Sprintf("10.%d.%d.1", k/250, k%250)) }},
		{"", func(k int) *Request { return policyRequest("/", fmt.Sprintf("2001:db8::%x", k+1)) }},
		{"path", func(k int) *Request { return policyRequest(fmt.Sprintf("/flights/%d?page=%d", k, k%7), "10.0.0.1") }},
		{"header:X-User", func(k int) *Request {
			return policyRequest("/", "10.0.0.1", "Accept", "*/*", "x-user", fmt.Sprintf("user-%d", k))
		}},
		{"cookie:uid", func(k int) *Request {
			return policyRequest("/", "10.0.0.1", "Cookie", fmt.Sprintf("theme=dark; uid=%d", k))
		}},
	}
	for _, tt := range tests {
		pool := policyPool(t, 1, 1, 1, 1)
		s1 := mustSelector(t, PolicyConfig{Name: "hash", HashKey: tt.key})
		// A second selector, as in a second balancer, over the same members
		// in another order must map every key alike.
		s2 := mustSelector(t, PolicyConfig{Name: "hash", HashKey: tt.key})
		reversed := slices.Clone(pool)
		slices.Reverse(reversed)
		used := map[string]int{}
		for k := range 400 {
			first, _ := s1.Select(pool, tt.request(k))
			for range 3 {
				if b, _ := s1.Select(pool, tt.request(k)); b != first {
					t.Fatalf("key %q #%d: picked %s then %s", tt.key, k, first.ID, b.ID)
				}
			}
			if b, _ := s2.Select(reversed, tt.request(k)); b != first {
				t.Fatalf("key %q #%d: %s in one selector, %s in another with the pool reversed", tt.key, k, first.ID, b.ID)
			}
			used[first.ID]++
		}
		// 400 keys over 4 members: each gets some (about 100).
		for _, b := range pool {
			if used[b.ID] < 40 {
				t.Errorf("key %q: member %s got %d of 400 keys; want a fair part", tt.key, b.ID, used[b.ID])
			}
		}
	}
}

func TestHashMissingKeyFallsBackToIP(t *testing.T) {
	t.Parallel()
	pool := policyPool(t, 1, 1, 1, 1, 1)
	byHeader := mustSelector(t, PolicyConfig{Name: "hash", HashKey: "header:x-user"})
	byIP := mustSelector(t, PolicyConfig{Name: "hash", HashKey: "ip"})
	for k := range 200 {
		r := policyRequest("/", fmt.Sprintf("192.0.2.%d", k))
		if k%2 == 1 {
			r = policyRequest("/", fmt.Sprintf("192.0.2.%d", k), "X-User", "")
		}
		a, _ := byHeader.Select(pool, r)
		b, _ := byIP.Select(pool, r)
		if a != b {
			t.Fatalf("no or empty X-User header, ip 192.0.2.%d: %s, want %s as hashed by ip", k, a.ID, b.ID)
		}
	}
}

// TestHashStableWhenMemberAdded adds a fifth member to four: about 1/5 of
// the keys move, all of them to the new member.
func TestHashStableWhenMemberAdded(t *testing.T) {
	t.Parallel()
	for _, weights := range [][]int{{1, 1, 1, 1, 1}, {2, 2, 2, 2, 2}, {1, 3, 1, 3, 2}} {
		pool := policyPool(t, weights...)
		four, five := pool[:4], pool
		s := mustSelector(t, PolicyConfig{Name: "hash", HashKey: "header:x-user"})
		const keys = 10_000
		before := make([]*Backend, keys)
		for k := range keys {
			before[k], _ = s.Select(four, policyRequest("/", "10.0.0.1", "X-User", fmt.Sprint("u", k)))
		}
		moved := 0
		for k := range keys {
			b, _ := s.Select(five, policyRequest("/", "10.0.0.1", "X-User", fmt.Sprint("u", k)))
			if b != before[k] {
				moved++
				if b != pool[4] {
					t.Fatalf("weights %v: key u%d moved from %s to %s; want moves only to the new member", weights, k, before[k].ID, b.ID)
				}
			}
		}
		share := float64(moved) / keys
		t.Logf("weights %v: %.1f%% of keys moved", weights, 100*share)
		if share < 0.10 || share > 0.30 {
			t.Errorf("weights %v: %.1f%% of keys moved; want 10%%..30%% (new member's share %d/%d)", weights, 100*share, weights[4], sumInts(weights))
		}
	}
}

func sumInts(v []int) int {
	s := 0
	for _, x := range v {
		s += x
	}
	return s
}

// TestHashBoundedLoad: a hot key's member that is past its bound sends the
// key on to the next member clockwise, always the same one; once its load
// falls back, the key returns home.
func TestHashBoundedLoad(t *testing.T) {
	t.Parallel()
	pool := policyPool(t, 1, 1, 1, 1)
	s := mustSelector(t, PolicyConfig{Name: "hash", HashKey: "cookie:uid"})
	r := policyRequest("/", "10.0.0.1", "Cookie", "uid=hot")
	home, _ := s.Select(pool, r)
	home.inFlight.Store(10) // bound: ceil(11/4 x 1.25) = 4
	spill, _ := s.Select(pool, r)
	if spill == home {
		t.Fatalf("home %s has 10 in flight of 10; key still sent there", home.ID)
	}
	for range 100 {
		if b, _ := s.Select(pool, r); b != spill {
			t.Fatalf("overloaded home: picked %s then %s; want the same next member", spill.ID, b.ID)
		}
	}
	// At 3 in flight of 3 the bound is ceil(4/4 x 1.25) = 2: still full.
	home.inFlight.Store(3)
	if b, _ := s.Select(pool, r); b == home {
		t.Errorf("home at 3 of 3 in flight (bound 2): key sent home")
	}
	// With others as busy as home, home is within its bound again.
	for _, b := range pool {
		b.inFlight.Store(3) // bound ceil(13/4 x 1.25) = 5
	}
	if b, _ := s.Select(pool, r); b != home {
		t.Errorf("even load: key went to %s, want home %s", b.ID, home.ID)
	}
	// Bounds off: home takes the key whatever its load.
	unbounded := mustSelector(t, PolicyConfig{Name: "hash", HashKey: "cookie:uid", HashBalance: math.Inf(1)})
	home.inFlight.Store(1000)
	if b, _ := unbounded.Select(pool, r); b != home {
		t.Errorf("HashBalance +Inf: key went to %s, want home %s", b.ID, home.ID)
	}
}

// TestHashSpreadsHotLoad: many requests for one key, each staying in
// flight, fill members in ring order without any exceeding its bound.
func TestHashSpreadsHotLoad(t *testing.T) {
	t.Parallel()
	pool := policyPool(t, 1, 1, 1, 1)
	s := mustSelector(t, PolicyConfig{Name: "hash", HashKey: "path"})
	r := policyRequest("/hot", "10.0.0.1")
	for total := int64(0); total < 100; total++ {
		b, _ := s.Select(pool, r)
		b.inFlight.Add(1)
	}
	// Bound at 100 in flight: ceil(100/4 x 1.25) = 32.
	for _, b := range pool {
		if l := b.InFlight(); l > 32 {
			t.Errorf("member %s has %d of 100 in flight; want at most 32", b.ID, l)
		}
	}
}

// TestHashRingLookup checks the ring's index against a binary search.
func TestHashRingLookup(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3, 17, 100} {
		s, err := newHash(PolicyConfig{VirtualNodes: 7})
		if err != nil {
			t.Fatal(err)
		}
		ring := s.build(policyPool(t, make([]int, n)...))
		probes := []uint64{0, 1, math.MaxUint64, ring.points[0], ring.points[len(ring.points)-1], ring.points[len(ring.points)-1] + 1}
		for k := range 5000 {
			probes = append(probes, hash64([]byte(fmt.Sprint(k))))
		}
		for _, p := range ring.points {
			probes = append(probes, p-1, p, p+1)
		}
		for _, h := range probes {
			want, _ := slices.BinarySearch(ring.points, h)
			if want == len(ring.points) {
				want = 0
			}
			if got := ring.lookup(h); got != want {
				t.Fatalf("%d members: lookup(%#x) = %d, want %d", n, h, got, want)
			}
		}
	}
}
