package keys

import (
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// steppingClock is a clock a test moves by hand, including backwards.
type steppingClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *steppingClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *steppingClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestSnowflakeMonotonicWhenClockStepsBack(t *testing.T) {
	t.Parallel()
	clk := &steppingClock{t: DefaultEpoch.Add(time.Hour)}
	g, err := NewSnowflake(Config{Node: 37, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	steps := []time.Duration{0, time.Millisecond, -5 * time.Second, 0, 0, 2 * time.Millisecond, -time.Millisecond, 10 * time.Second}
	var prev int64 = -1
	for i, d := range steps {
		clk.Add(d)
		// More than one millisecond's worth of sequence numbers per step,
		// so the overflow path runs too.
		for j := 0; j < 5000; j++ {
			id := g.Next()
			if id <= prev {
				t.Fatalf("step %d, id %d: got %d after %d, want strictly increasing", i, j, id, prev)
			}
			if got := Node(id); got != 37 {
				t.Fatalf("Node(%d) = %d, want 37", id, got)
			}
			prev = id
		}
	}
	// After the clock jumped 10s ahead the IDs carry the clock's time again.
	if got, want := Time(prev, time.Time{}), clk.Now(); got.Before(want.Add(-time.Second)) || got.After(want.Add(time.Second)) {
		t.Errorf("Time of last id = %v, want about %v", got, want)
	}
}

func TestSnowflakeNodesNeverCollide(t *testing.T) {
	t.Parallel()
	seen := map[int64]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for node := range 4 {
		g, err := NewSnowflake(Config{Node: node})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			ids := make([]int64, 20000)
			for i := range ids {
				ids[i] = g.Next()
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if other, dup := seen[id]; dup {
					t.Errorf("id %d made by node %d and node %d", id, other, node)
				}
				seen[id] = node
			}
		})
	}
	wg.Wait()
	if len(seen) != 80000 {
		t.Errorf("got %d distinct ids, want 80000", len(seen))
	}
}

func TestNewSnowflakeRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Node: -1},
		{Node: MaxNode + 1},
		{Epoch: time.Now().Add(time.Hour)},
	} {
		if _, err := NewSnowflake(cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("NewSnowflake(%+v) error = %v, want ErrBadConfig", cfg, err)
		}
	}
}

func TestUUIDv7(t *testing.T) {
	t.Parallel()
	clk := &steppingClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	g := NewUUIDv7(clk.Now)
	var prev string
	for i := range 10000 {
		if i == 5000 {
			clk.Add(-time.Minute)
		}
		u := g.Next()
		s := u.String()
		if s <= prev {
			t.Fatalf("uuid %d: %s after %s, want increasing", i, s, prev)
		}
		prev = s
		if u.Version() != 7 || u[8]>>6 != 2 {
			t.Fatalf("uuid %s: version %d variant bits %b, want 7 and 10", s, u.Version(), u[8]>>6)
		}
		back, err := ParseUUID(strings.ToUpper(s))
		if err != nil || back != u {
			t.Fatalf("ParseUUID(%q) = %v, %v; want %v", s, back, err, u)
		}
	}
	if got := g.Next().Time(); got.Before(clk.Now()) {
		t.Errorf("Time() = %v, want at least the clock's %v", got, clk.Now())
	}
}

func TestParseUUIDRejects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "0193", "01936a2e-7b4c-7000-8f1e-2d3c4b5a697", "01936a2e+7b4c-7000-8f1e-2d3c4b5a6978", "0193zz2e-7b4c-7000-8f1e-2d3c4b5a6978"} {
		if _, err := ParseUUID(s); !errors.Is(err, ErrBadUUID) {
			t.Errorf("ParseUUID(%q) error = %v, want ErrBadUUID", s, err)
		}
	}
}

func FuzzParseUUID(f *testing.F) {
	f.Add("01936a2e-7b4c-7000-8f1e-2d3c4b5a6978")
	f.Add("--------------------------------------")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUUID(s)
		if err != nil {
			return
		}
		if got := u.String(); !strings.EqualFold(got, s) {
			t.Errorf("ParseUUID(%q).String() = %q", s, got)
		}
	})
}

func TestOffsets(t *testing.T) {
	t.Parallel()
	const n = 3
	var all []int64
	for k := int64(1); k <= n; k++ {
		o, err := NewOffsets(n, k)
		if err != nil {
			t.Fatal(err)
		}
		c := NewCounter(o, 0)
		for range 100 {
			v := c.Next()
			if !o.Owns(v) {
				t.Fatalf("node %d issued %d, which Owns denies", k, v)
			}
			all = append(all, v)
		}
		// A counter restored after a restart continues past what is stored.
		if got, want := NewCounter(o, all[len(all)-1]).Next(), all[len(all)-1]+n; got != want {
			t.Errorf("restored counter of node %d: got %d, want %d", k, got, want)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for i, v := range all {
		if v != int64(i+1) {
			t.Fatalf("the three nodes together issued %v..., want exactly 1..300", all[:i+1])
		}
	}
	for _, tc := range [][2]int64{{0, 1}, {3, 0}, {3, 4}} {
		if _, err := NewOffsets(tc[0], tc[1]); !errors.Is(err, ErrBadConfig) {
			t.Errorf("NewOffsets(%d, %d) error = %v, want ErrBadConfig", tc[0], tc[1], err)
		}
	}
}
