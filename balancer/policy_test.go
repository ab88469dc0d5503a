package balancer

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// policyPool returns members named a, b, c... with the given weights.
func policyPool(t testing.TB, weights ...int) []*Backend {
	t.Helper()
	pool := make([]*Backend, len(weights))
	for i, w := range weights {
		id := string(rune('a' + i))
		if i >= 26 {
			id = fmt.Sprintf("m%d", i)
		}
		b, err := NewBackend(id, fmt.Sprintf("http://127.0.0.1:%d", 20000+i), w)
		if err != nil {
			t.Fatal(err)
		}
		b.readySince.Store(-int64(time.Hour)) // long past slow start
		pool[i] = b
	}
	return pool
}

// policyRequest returns a request for target from ip with header fields
// given as name, value pairs.
func policyRequest(target, ip string, headers ...string) *Request {
	r := &Request{Method: []byte("GET"), Target: []byte(target), ClientIP: netip.MustParseAddr(ip)}
	for i := 0; i+1 < len(headers); i += 2 {
		r.headers = append(r.headers, headerField{name: []byte(headers[i]), value: []byte(headers[i+1])})
	}
	return r
}

func setInFlight(pool []*Backend, loads ...int64) {
	for i, l := range loads {
		pool[i].inFlight.Store(l)
	}
}

func mustSelector(t testing.TB, cfg PolicyConfig) Selector {
	t.Helper()
	s, err := NewSelector(cfg)
	if err != nil {
		t.Fatalf("NewSelector(%+v): %v", cfg, err)
	}
	return s
}

// countPicks selects n times and returns how often each member was picked.
func countPicks(t testing.TB, s Selector, pool []*Backend, r *Request, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		b, ok := s.Select(pool, r)
		if !ok || b == nil {
			t.Fatalf("Select = %v, %v; want a member", b, ok)
		}
		got[b.ID]++
	}
	return got
}

func TestNewSelector(t *testing.T) {
	t.Parallel()
	for _, name := range append(PolicyNames(), "") {
		s, err := NewSelector(PolicyConfig{Name: name})
		if err != nil || s == nil {
			t.Errorf("NewSelector(%q) = %v, %v; want a selector", name, s, err)
			continue
		}
		if b, ok := s.Select(nil, policyRequest("/", "127.0.0.1")); ok || b != nil {
			t.Errorf("%q: Select(empty pool) = %v, %v; want nil, false", name, b, ok)
		}
		pool := policyPool(t, 1)
		if b, ok := s.Select(pool, policyRequest("/", "127.0.0.1")); !ok || b != pool[0] {
			t.Errorf("%q: Select(one member) = %v, %v; want a, true", name, b, ok)
		}
		// A nil request is not the balancer's use, but must not panic.
		if b, ok := s.Select(policyPool(t, 1, 2, 3), nil); !ok || b == nil {
			t.Errorf("%q: Select(nil request) = %v, %v; want a member", name, b, ok)
		}
	}
	if _, ok := mustSelector(t, PolicyConfig{}).(*p2c); !ok {
		t.Errorf("default policy is not p2c")
	}
}

func TestNewSelectorErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  PolicyConfig
		want []string
	}{
		{PolicyConfig{Name: "fastest"}, []string{`"fastest"`, "unknown policy", "p2c, random, round-robin, least-connections, peak-ewma, hash"}},
		{PolicyConfig{Name: "Round-Robin"}, []string{`"Round-Robin"`, "valid:"}},
		{PolicyConfig{Name: "hash", HashKey: "header:"}, []string{`"header:"`, "header:NAME"}},
		{PolicyConfig{Name: "hash", HashKey: "cookie:a b"}, []string{`"cookie:a b"`}},
		{PolicyConfig{Name: "hash", HashKey: "query"}, []string{`"query"`}},
		{PolicyConfig{Name: "hash", HashBalance: -0.5}, []string{"balance -0.5"}},
		{PolicyConfig{Name: "hash", HashBalance: math.NaN()}, []string{"balance NaN"}},
		{PolicyConfig{Name: "hash", VirtualNodes: -1}, []string{"virtual nodes -1"}},
		{PolicyConfig{Name: "hash", VirtualNodes: 10001}, []string{"virtual nodes 10001"}},
	}
	for _, tt := range tests {
		s, err := NewSelector(tt.cfg)
		if err == nil {
			t.Errorf("NewSelector(%+v) = %T, nil; want an error", tt.cfg, s)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("NewSelector(%+v) error %q; want it to contain %q", tt.cfg, err, w)
			}
		}
	}
	_, err := NewSelector(PolicyConfig{Name: "fastest"})
	if !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf("unknown name: error %v; want errors.Is ErrUnknownPolicy", err)
	}
}

func TestRandomWeightedProportions(t *testing.T) {
	t.Parallel()
	// 100,000 draws: the standard deviation of a share p is at most
	// sqrt(0.25/1e5) = 0.0016, so a tolerance of 0.012 is over 7 sigmas.
	const n = 100_000
	tests := []struct {
		weights []int
	}{
		{[]int{1, 1, 1}},
		{[]int{1, 2, 7}},
		{[]int{5, 1, 1, 3}},
	}
	for _, tt := range tests {
		pool := policyPool(t, tt.weights...)
		got := countPicks(t, mustSelector(t, PolicyConfig{Name: "random"}), pool, policyRequest("/", "10.0.0.1"), n)
		total := 0
		for _, w := range tt.weights {
			total += w
		}
		for i, b := range pool {
			share, want := float64(got[b.ID])/n, float64(tt.weights[i])/float64(total)
			if math.Abs(share-want) > 0.012 {
				t.Errorf("weights %v: member %s share %.4f, want %.4f", tt.weights, b.ID, share, want)
			}
		}
	}
}

func TestLeastConnections(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		weights  []int
		inflight []int64
		want     string // members that may be picked; each must be, over 2000 picks
	}{
		{"idle one", []int{1, 1, 1}, []int64{5, 0, 3}, "b"},
		{"least busy", []int{1, 1, 1, 1}, []int64{4, 9, 2, 7}, "c"},
		{"ties at random", []int{1, 1, 1}, []int64{0, 0, 9}, "ab"},
		{"busy ties", []int{1, 1, 1, 1}, []int64{4, 2, 2, 7}, "bc"},
		{"relative to weight", []int{3, 1}, []int64{2, 1}, "a"},
		{"weighted tie", []int{3, 1}, []int64{3, 1}, "ab"},
		{"heavy member busier", []int{1, 4}, []int64{2, 7}, "b"},
	}
	for _, tt := range tests {
		pool := policyPool(t, tt.weights...)
		setInFlight(pool, tt.inflight...)
		got := countPicks(t, mustSelector(t, PolicyConfig{Name: "least-connections"}), pool, policyRequest("/", "10.0.0.1"), 2000)
		for id, c := range got {
			if !strings.Contains(tt.want, id) {
				t.Errorf("%s: picked %s %d times; want only %q", tt.name, id, c, tt.want)
			}
		}
		for _, id := range tt.want {
			// A tied member is found first with probability at least 1/n.
			if got[string(id)] < 2000/len(pool)/2 {
				t.Errorf("%s: picked %s %d times of 2000; want it often (ties broken at random)", tt.name, string(id), got[string(id)])
			}
		}
	}
}

func TestP2C(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		weights  []int
		inflight []int64
		want     map[string]float64 // share per member, within 0.03 (over 8 sigmas at 20,000 picks)
	}{
		// With two members both are always in the pair, so the idle one
		// wins every time: a pair of the same member would break this.
		{"pair of two", []int{1, 1}, []int64{5, 0}, map[string]float64{"b": 1}},
		{"weighted pair of two", []int{1, 9}, []int64{0, 1}, map[string]float64{"a": 1}},
		// The busy member loses every pair it is in.
		{"busy member avoided", []int{1, 1, 1}, []int64{0, 0, 10}, map[string]float64{"a": 0.5, "b": 0.5}},
		{"idle shares follow weight", []int{1, 3}, []int64{0, 0}, map[string]float64{"a": 0.25, "b": 0.75}},
		{"idle uniform", []int{2, 2, 2, 2}, []int64{0, 0, 0, 0}, map[string]float64{"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}},
		// c wins whenever it is drawn with a (P = 2/3), b never.
		{"least loaded of pair", []int{1, 1, 1}, []int64{3, 9, 1}, map[string]float64{"a": 1.0 / 3, "c": 2.0 / 3}},
	}
	const n = 20_000
	for _, tt := range tests {
		pool := policyPool(t, tt.weights...)
		setInFlight(pool, tt.inflight...)
		got := countPicks(t, mustSelector(t, PolicyConfig{Name: "p2c"}), pool, policyRequest("/", "10.0.0.1"), n)
		for _, b := range pool {
			share := float64(got[b.ID]) / n
			if want := tt.want[b.ID]; math.Abs(share-want) > 0.03 {
				t.Errorf("%s: member %s share %.4f, want %.4f", tt.name, b.ID, share, want)
			}
		}
	}
}

func TestDrawPairDistinct(t *testing.T) {
	t.Parallel()
	for _, weights := range [][]int{{1, 1}, {1, 1, 1}, {1, 1000}, {5, 1, 1}, {1, 2, 3, 4, 5, 6, 7}} {
		pool := policyPool(t, weights...)
		tab := buildWeightTable(pool)
		seen := map[[2]int]bool{}
		for range 20_000 {
			i, j := tab.drawPair(len(pool))
			if i == j || i < 0 || j < 0 || i >= len(pool) || j >= len(pool) {
				t.Fatalf("weights %v: drawPair = %d, %d; want two different indexes below %d", weights, i, j, len(pool))
			}
			seen[[2]int{i, j}] = true
		}
		// Every ordered pair is possible; 20,000 draws see each one.
		if want := len(pool) * (len(pool) - 1); len(seen) != want && weights[1] != 1000 {
			t.Errorf("weights %v: saw %d ordered pairs, want %d", weights, len(seen), want)
		}
	}
}

// TestPeakEWMA replays a pool of two 1 ms members and one 50 ms member,
// one request per millisecond of the balancer's clock for 20 s.
func TestPeakEWMA(t *testing.T) {
	t.Parallel()
	const ms = 1_000_000
	pool := policyPool(t, 1, 1, 1)
	rtt := map[string]int64{"a": 1 * ms, "b": 1 * ms, "c": 50 * ms}
	for _, b := range pool {
		b.observe(0, time.Duration(rtt[b.ID]), false)
	}
	s := mustSelector(t, PolicyConfig{Name: "peak-ewma"})
	r := policyRequest("/", "10.0.0.1")
	const n = 20_000
	slow, firstProbe := 0, int64(-1)
	for k := int64(1); k <= n; k++ {
		r.Now = k * ms
		b, ok := s.Select(pool, r)
		if !ok {
			t.Fatal("Select found no member")
		}
		if b.ID == "c" {
			slow++
			if firstProbe < 0 {
				firstProbe = r.Now
			}
		}
		b.observe(r.Now+rtt[b.ID], time.Duration(rtt[b.ID]), false)
	}
	t.Logf("slow member picked %d of %d times, first at %d ms", slow, n, firstProbe/ms)
	if share := float64(slow) / n; share >= 0.01 {
		t.Errorf("slow member share %.4f, want under 0.01", share)
	}
	if slow == 0 {
		t.Errorf("slow member never picked in 20 s; want a probe once its estimate decays")
	}
	// 50 ms decays below 1 ms after 2 s x ln 50, about 7.8 s.
	if firstProbe >= 0 && firstProbe < 5000*ms {
		t.Errorf("slow member first picked at %d ms, want after its estimate decays (~7800 ms)", firstProbe/ms)
	}
}

func TestPeakEWMALoadAndFailures(t *testing.T) {
	t.Parallel()
	const ms = 1_000_000
	tests := []struct {
		name     string
		rtt      []int64 // per member, ns
		failed   []bool
		inflight []int64
		maxShare []float64 // per member, over 3000 picks
	}{
		{"fast failures look slow", []int64{5 * ms, 5 * ms, 1 * ms}, []bool{false, false, true}, []int64{0, 0, 0}, []float64{1, 1, 0.01}},
		// 1 ms x 201 in flight costs more than 50 ms x 1: the slow idle
		// member wins every pair it is in (2/3), a and b share the rest.
		{"in-flight counts", []int64{1 * ms, 1 * ms, 50 * ms}, []bool{false, false, false}, []int64{200, 200, 0}, []float64{0.25, 0.25, 1}},
	}
	for _, tt := range tests {
		pool := policyPool(t, 1, 1, 1)
		for i, b := range pool {
			b.observe(0, time.Duration(tt.rtt[i]), tt.failed[i])
		}
		setInFlight(pool, tt.inflight...)
		r := policyRequest("/", "10.0.0.1")
		r.Now = 100 * ms
		got := countPicks(t, mustSelector(t, PolicyConfig{Name: "peak-ewma"}), pool, r, 3000)
		for i, b := range pool {
			if share := float64(got[b.ID]) / 3000; share >= tt.maxShare[i] && tt.maxShare[i] < 1 {
				t.Errorf("%s: member %s share %.4f; want under %.2f", tt.name, b.ID, share, tt.maxShare[i])
			}
		}
	}
}

func TestSelectorsConcurrent(t *testing.T) {
	t.Parallel()
	pool := policyPool(t, 1, 2, 3, 4)
	for _, name := range PolicyNames() {
		s := mustSelector(t, PolicyConfig{Name: name})
		var wg sync.WaitGroup
		counts := make([]map[string]int, 4)
		for g := range counts {
			wg.Go(func() {
				counts[g] = map[string]int{}
				r := policyRequest("/", fmt.Sprintf("10.0.0.%d", g+1))
				for range 1000 {
					b, ok := s.Select(pool, r)
					if !ok {
						return
					}
					counts[g][b.ID]++
				}
			})
		}
		wg.Wait()
		total := 0
		for _, c := range counts {
			for _, v := range c {
				total += v
			}
		}
		if total != 4000 {
			t.Errorf("%s: %d picks under concurrency, want 4000", name, total)
		}
	}
}

func FuzzPolicyConfig(f *testing.F) {
	f.Add("hash", "header:X-User", 0.25, 0)
	f.Add("hash", "cookie:uid", 0.0, 3)
	f.Add("p2c", "", 0.0, 0)
	f.Add("hash", "ip:", -1.0, -5)
	f.Fuzz(func(t *testing.T, name, key string, balance float64, vnodes int) {
		s, err := NewSelector(PolicyConfig{Name: name, HashKey: key, HashBalance: balance, VirtualNodes: vnodes})
		if err != nil {
			if s != nil {
				t.Fatalf("NewSelector returned %T with error %v", s, err)
			}
			return
		}
		pool := policyPool(t, 1, 2, 1)
		r := policyRequest("/"+key, "192.0.2.7", "X-User", key, "Cookie", "uid="+key)
		if b, ok := s.Select(pool, r); !ok || b == nil {
			t.Fatalf("%+v: Select = %v, %v; want a member", name, b, ok)
		}
	})
}

// TestWeightTableExact checks the alias table's arithmetic: the chance it
// gives each member, summed over columns, is exactly its weight's share.
func TestWeightTableExact(t *testing.T) {
	t.Parallel()
	for _, weights := range [][]int{{1, 2}, {1, 2, 7}, {5, 1, 1, 3}, {1, 1000, 1, 3, 999, 2}, {3, 3, 3, 4}} {
		tab := buildWeightTable(policyPool(t, weights...))
		n := uint64(len(weights))
		got := make([]uint64, n) // chance x n x total
		for k := range tab.keep {
			got[k] += tab.keep[k]
			got[tab.alias[k]] += tab.total - tab.keep[k]
		}
		for i, w := range weights {
			if want := uint64(w) * n; got[i] != want {
				t.Errorf("weights %v: member %d has %d/%d, want %d/%d", weights, i, got[i], n*tab.total, want, n*tab.total)
			}
		}
	}
}

func TestSlowStart(t *testing.T) {
	t.Parallel()
	const now = int64(time.Hour)
	tests := []struct {
		policy    string
		slowStart time.Duration
		readyAgo  time.Duration // of member c; a and b are long ready
		inflight  []int64
		wantC     float64 // c's share of 6000 picks, within 0.04
	}{
		// c has 2 in flight against 10: p2c picks it whenever drawn (2/3)
		// unless, 1 s into a 10 s slow start, it counts with 10% of its
		// weight: 2/0.1 = 20 > 10.
		{"p2c", 0, time.Second, []int64{10, 10, 2}, 0},
		{"p2c", -1, time.Second, []int64{10, 10, 2}, 2.0 / 3},
		{"p2c", 0, 11 * time.Second, []int64{10, 10, 2}, 2.0 / 3},
		// Half way (factor 0.5) c counts 6 as 12: too many; near the end
		// (factor 15/16) as 6.4.
		{"p2c", 20 * time.Second, 11 * time.Second, []int64{10, 10, 6}, 0},
		{"p2c", 20 * time.Second, 19 * time.Second, []int64{10, 10, 6}, 2.0 / 3},
		// Idle, c costs ten times its peers at first, and then the same.
		{"peak-ewma", 0, time.Second, []int64{0, 0, 0}, 0},
		{"peak-ewma", 0, time.Minute, []int64{0, 0, 0}, 1.0 / 3},
		{"peak-ewma", -1, time.Second, []int64{0, 0, 0}, 1.0 / 3},
	}
	for _, tt := range tests {
		pool := policyPool(t, 1, 1, 1)
		setInFlight(pool, tt.inflight...)
		pool[2].readySince.Store(now - int64(tt.readyAgo))
		r := policyRequest("/", "10.0.0.1")
		r.Now = now
		got := countPicks(t, mustSelector(t, PolicyConfig{Name: tt.policy, SlowStart: tt.slowStart}), pool, r, 6000)
		if share := float64(got["c"]) / 6000; math.Abs(share-tt.wantC) > 0.04 {
			t.Errorf("%s, slow start %v, c ready %v ago: c share %.3f, want %.3f", tt.policy, tt.slowStart, tt.readyAgo, share, tt.wantC)
		}
	}
}
