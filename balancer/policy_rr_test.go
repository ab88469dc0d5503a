package balancer

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// referenceSWRR is nginx's smooth weighted round robin written plainly,
// without the gcd reduction or the precomputed schedule, as an oracle.
func referenceSWRR(weights []int, n int) []int {
	cur := make([]int, len(weights))
	total := 0
	for _, w := range weights {
		total += w
	}
	out := make([]int, n)
	for k := range out {
		best := 0
		for i, w := range weights {
			cur[i] += w
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out[k] = best
	}
	return out
}

func pickSequence(t *testing.T, s Selector, pool []*Backend, n int) string {
	t.Helper()
	var sb strings.Builder
	for range n {
		b, ok := s.Select(pool, nil)
		if !ok {
			t.Fatal("Select found no member")
		}
		sb.WriteString(b.ID)
	}
	return sb.String()
}

func TestRoundRobinSequence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		weights []int
		want    string
	}{
		{[]int{1, 1, 1}, "abcabcabc"},
		{[]int{5, 1, 1}, "aabacaa" + "aabacaa"},
		{[]int{2, 2, 4}, "cabc" + "cabc"},
		{[]int{1, 2}, "bab" + "bab"},
		{[]int{4, 3, 2}, "abcabacba"},
	}
	for _, tt := range tests {
		for _, mode := range []struct {
			name    string
			maxWork int
		}{{"schedule", maxScheduleWork}, {"live", 0}} {
			pool := policyPool(t, tt.weights...)
			got := pickSequence(t, newRoundRobin(mode.maxWork), pool, len(tt.want))
			if got != tt.want {
				t.Errorf("%s, weights %v: sequence %q, want %q", mode.name, tt.weights, got, tt.want)
			}
		}
	}
}

// TestRoundRobinMatchesReference checks the schedule and the live mode
// against the plain algorithm on random weights, over several periods.
func TestRoundRobinMatchesReference(t *testing.T) {
	t.Parallel()
	for range 50 {
		weights := make([]int, 2+rand.IntN(12))
		for i := range weights {
			weights[i] = 1 + rand.IntN(20)
			if rand.IntN(2) == 0 {
				weights[i] *= 6 // shared factors exercise the gcd reduction
			}
		}
		total := 0
		for _, w := range weights {
			total += w
		}
		want := referenceSWRR(weights, 3*total)
		for _, maxWork := range []int{maxScheduleWork, 0} {
			pool := policyPool(t, weights...)
			s := newRoundRobin(maxWork)
			counts := make([]int, len(pool))
			for k, w := range want {
				b, _ := s.Select(pool, nil)
				if b != pool[w] {
					t.Fatalf("maxWork %d, weights %v: pick %d is %s, want %s", maxWork, weights, k, b.ID, pool[w].ID)
				}
				counts[w]++
			}
			for i, c := range counts {
				if c != 3*weights[i] {
					t.Errorf("weights %v: member %d picked %d times in 3 periods, want %d", weights, i, c, 3*weights[i])
				}
			}
		}
	}
}

// TestRoundRobinConcurrent checks that concurrent pickers together take
// exactly the schedule: whole periods give exact weighted counts.
func TestRoundRobinConcurrent(t *testing.T) {
	t.Parallel()
	weights := []int{5, 1, 1, 3} // period 10
	pool := policyPool(t, weights...)
	s := mustSelector(t, PolicyConfig{Name: "round-robin"})
	const goroutines, picks = 4, 2500
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			local := map[string]int{}
			for range picks {
				b, _ := s.Select(pool, nil)
				local[b.ID]++
			}
			mu.Lock()
			for id, c := range local {
				counts[id] += c
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for i, b := range pool {
		if want := weights[i] * goroutines * picks / 10; counts[b.ID] != want {
			t.Errorf("member %s picked %d times, want %d", b.ID, counts[b.ID], want)
		}
	}
}

func TestRoundRobinPoolChange(t *testing.T) {
	t.Parallel()
	s := mustSelector(t, PolicyConfig{Name: "round-robin"})
	pool := policyPool(t, 1, 1, 1, 1)
	if got := pickSequence(t, s, pool[:3], 6); got != "abcabc" {
		t.Errorf("three members: %q, want abcabc", got)
	}
	// A new pool (a new slice) is seen at once.
	if got := pickSequence(t, s, append([]*Backend(nil), pool[1:]...), 6); got != "bcdbcd" {
		t.Errorf("after the change: %q, want bcdbcd", got)
	}
}
