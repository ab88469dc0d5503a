package loadgen

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// tokenBucket enforces a capacity: rate tokens per second, at most burst
// saved up; a request that finds no token is refused with 503 at once.
type tokenBucket struct {
	rate, burst float64
	// mu guards tokens and last.
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.last.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// TestSearchFindsTokenBucketCapacity runs the capacity search against a
// server whose capacity is enforced at 400 req/s. The capacity is kept low
// so that the shared test machine, not the server, is never the limit.
func TestSearchFindsTokenBucketCapacity(t *testing.T) {
	// Not parallel: timing-sensitive, it runs alone in this binary.
	const capacity = 400
	// A 300ms burst absorbs the generator's catch-up after a stall of the
	// shared machine; over a 4s step it lets at most ~35 req/s over
	// capacity (9%) pass the 1% error budget.
	bucket := &tokenBucket{rate: capacity, burst: 0.3 * capacity}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bucket.take() {
			http.Error(w, "over capacity", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()

	var steps []Step
	s, err := NewSearch(SearchConfig{
		Load: Config{Targets: []Target{{URL: srv.URL}}},
		// Refusals are the capacity signal here: the latency objective
		// and the shortfall rule are loose so that stalls of the loaded
		// test machine do not fail steps the server passed.
		SLO:          time.Second,
		MinAchieved:  0.8,
		ErrorBudget:  0.01,
		StartRate:    100,
		MaxRate:      3200,
		StepDuration: 4 * time.Second,
		OnStep:       func(st Step) { steps = append(steps, st) },
	})
	if err != nil {
		t.Fatalf("NewSearch: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	c, err := s.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var table strings.Builder
	c.WriteText(&table)
	t.Logf("capacity search:\n%s", table.String())

	if lo, hi := 0.85*capacity, 1.15*capacity; c.KneeRPS < lo || c.KneeRPS > hi {
		t.Errorf("knee: got %.1f req/s, want within 15%% of %d ([%.0f, %.0f])", c.KneeRPS, capacity, lo, hi)
	}
	if c.AtMax {
		t.Errorf("AtMax: got true, want false (3200 req/s is far over capacity)")
	}
	if len(steps) != len(c.Steps) || len(steps) < 4 {
		t.Errorf("steps: OnStep saw %d, result has %d, want the same and at least 4", len(steps), len(c.Steps))
	}
	if c.TargetLowRPS != 0.7*c.KneeRPS || c.TargetHighRPS != 0.8*c.KneeRPS {
		t.Errorf("autoscale target: got %.1f-%.1f, want 70-80%% of %.1f", c.TargetLowRPS, c.TargetHighRPS, c.KneeRPS)
	}
	if !strings.Contains(table.String(), "Suggested autoscaling target") {
		t.Errorf("report does not suggest an autoscaling target:\n%s", table.String())
	}
}

func TestNewSearchRejectsBadConfig(t *testing.T) {
	t.Parallel()
	load := Config{Targets: []Target{{URL: "http://127.0.0.1:1/"}}}
	tests := []struct {
		name string
		cfg  SearchConfig
		want string
	}{
		{"negative slo", SearchConfig{Load: load, SLO: -time.Millisecond}, "slo"},
		{"budget of 1", SearchConfig{Load: load, ErrorBudget: 1}, "error budget"},
		{"max below start", SearchConfig{Load: load, StartRate: 500, MaxRate: 100}, "below start rate"},
		{"bad target", SearchConfig{Load: Config{Targets: []Target{{URL: "gopher://x/"}}}}, "scheme"},
		{"no target", SearchConfig{}, "no target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewSearch(tt.cfg)
			if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrBadConfig mentioning %q", err, tt.want)
			}
		})
	}
}
