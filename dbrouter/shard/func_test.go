package shard

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestJumpSpreadsAndMovesLittle(t *testing.T) {
	t.Parallel()
	j8, _ := NewJump(8)
	j9, _ := NewJump(9)
	counts := make([]int, 8)
	moved := 0
	const n = 80000
	for i := range int64(n) {
		s := j8.Shard(IntKey(i))
		counts[s]++
		if s2 := j9.Shard(IntKey(i)); s2 != s {
			if s2 != 8 {
				t.Fatalf("key %d moved from shard %d to %d growing 8->9, want only moves to the new shard 8", i, s, s2)
			}
			moved++
		}
	}
	for s, c := range counts {
		if c < n/8*9/10 || c > n/8*11/10 {
			t.Errorf("shard %d got %d of %d keys, want within 10%% of %d", s, c, n, n/8)
		}
	}
	if moved < n/9*8/10 || moved > n/9*12/10 {
		t.Errorf("growing 8->9 moved %d keys, want about %d", moved, n/9)
	}
}

func TestRangesAndDirectory(t *testing.T) {
	t.Parallel()
	r, err := NewRanges([]Key{IntKey(100), IntKey(200), StringKey("m")})
	if err != nil {
		t.Fatal(err)
	}
	j, _ := NewJump(4)
	d, err := NewDirectory(map[Key]int{StringKey("hot-tenant"): 3, IntKey(150): 0}, r)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		f    Func
		k    Key
		want int
	}{
		{r, IntKey(-5), 0}, {r, IntKey(99), 0}, {r, IntKey(100), 1}, {r, IntKey(199), 1},
		{r, IntKey(200), 2}, {r, StringKey("a"), 2}, {r, StringKey("m"), 3}, {r, StringKey("zz"), 3},
		{d, StringKey("hot-tenant"), 3}, {d, IntKey(150), 0}, {d, IntKey(151), 1},
		{j, StringKey("x"), j.Shard(StringKey("x"))},
	}
	for _, tc := range tests {
		if got := tc.f.Shard(tc.k); got != tc.want {
			t.Errorf("%T.Shard(%v) = %d, want %d", tc.f, tc.k, got, tc.want)
		}
	}
	for _, bad := range [][]Key{{IntKey(2), IntKey(1)}, {StringKey("a"), StringKey("a")}} {
		if _, err := NewRanges(bad); !errors.Is(err, ErrBadConfig) {
			t.Errorf("NewRanges(%v) error = %v, want ErrBadConfig", bad, err)
		}
	}
	if _, err := NewDirectory(map[Key]int{IntKey(1): 9}, j); !errors.Is(err, ErrBadConfig) {
		t.Errorf("directory entry outside the shards: error = %v, want ErrBadConfig", err)
	}
}

func TestMapJSONRoundTrip(t *testing.T) {
	t.Parallel()
	j, _ := NewJump(4)
	d, _ := NewDirectory(map[Key]int{StringKey("hot"): 2}, j)
	m, err := NewMap(3, d, []string{"pg1", "pg1", "pg2", "pg2"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseMap(b)
	if err != nil {
		t.Fatalf("ParseMap(%s): %v", b, err)
	}
	if back.Epoch() != 3 || back.Placement(2) != "pg2" || back.Shard(StringKey("hot")) != 2 {
		t.Errorf("round trip of %s gave epoch %d placement %v", b, back.Epoch(), back.placement)
	}
	for i := range int64(100) {
		if back.Shard(IntKey(i)) != m.Shard(IntKey(i)) {
			t.Fatalf("key %d: shard differs after round trip", i)
		}
	}
	moved, err := m.Moved(1, "pg3")
	if err != nil || moved.Epoch() != 4 || moved.Placement(1) != "pg3" || m.Placement(1) != "pg1" {
		t.Errorf("Moved: epoch %d placement %v err %v; the original must not change", moved.Epoch(), moved.placement, err)
	}
}

func TestParseMapRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		``, `{}`, `{"epoch":0,"func":{"kind":"jump","shards":2},"placement":["a","b"]}`,
		`{"epoch":1,"func":{"kind":"jump","shards":2},"placement":["a"]}`,
		`{"epoch":1,"func":{"kind":"nope"},"placement":["a"]}`,
		`{"epoch":1,"func":{"kind":"jump","shards":1},"placement":["a b"]}`,
		`{"epoch":1,"func":{"kind":"directory"},"placement":["a"]}`,
		`{"epoch":1,"func":{"kind":"ranges","bounds":[3,1]},"placement":["a","b","c"]}`,
		`{"epoch":1,"func":{"kind":"jump","shards":1},"placement":["a"],"extra":1}`,
	} {
		if _, err := ParseMap([]byte(in)); !errors.Is(err, ErrBadConfig) {
			t.Errorf("ParseMap(%s) error = %v, want ErrBadConfig", in, err)
		}
	}
}

func FuzzParseMap(f *testing.F) {
	f.Add([]byte(`{"epoch":2,"func":{"kind":"directory","entries":[{"key":"t","shard":1}],"fallback":{"kind":"jump","shards":2}},"placement":["a","b"]}`))
	f.Add([]byte(`{"epoch":1,"func":{"kind":"ranges","bounds":[10,"x"]},"placement":["a","b","c"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMap(b)
		if err != nil {
			return
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal a parsed map: %v", err)
		}
		again, err := ParseMap(out)
		if err != nil || again.Epoch() != m.Epoch() || again.Shards() != m.Shards() {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		for i := range int64(20) {
			if s := m.Shard(IntKey(i)); s < 0 || s >= m.Shards() {
				t.Fatalf("key %d -> shard %d of %d", i, s, m.Shards())
			}
		}
	})
}
