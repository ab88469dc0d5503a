package autoscale

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration, n int) Recommendation { return Recommendation{At: now.Add(-d), Replicas: n} }
	base := func(cur int, obs float64) Input {
		return Input{Current: cur, Observed: obs, Target: 10, Min: 2, Max: 8, Now: now}
	}
	with := func(in Input, f func(*Input)) Input { f(&in); return in }
	tests := []struct {
		name        string
		in          Input
		desired     int
		recommended int
		code        Code
	}{
		// HPA's formula: ceil(current x observed / target).
		{"doubles under double load", base(2, 20), 4, 4, CodeScaleUp},
		{"rounds up", base(3, 11.5), 4, 4, CodeScaleUp},
		{"exact multiple does not round up", base(3, 20), 6, 6, CodeScaleUp},
		{"capped at max", base(4, 40), 8, 8, CodeScaleUp},
		{"at max wants more", base(8, 40), 8, 8, CodeAtMax},
		// Tolerance band (10% default, inclusive).
		{"inside band above", base(4, 10.9), 4, 4, CodeInTolerance},
		{"inside band below", base(4, 9.1), 4, 4, CodeInTolerance},
		{"band edge is inside", base(4, 11), 4, 4, CodeInTolerance},
		{"just outside band", base(4, 11.2), 5, 5, CodeScaleUp},
		{"wider band", with(base(4, 12), func(in *Input) { in.Tolerance = 0.25 }), 4, 4, CodeInTolerance},
		{"no band", with(base(10, 10.5), func(in *Input) { in.Tolerance = -1; in.Max = 20 }), 11, 11, CodeScaleUp},
		{"no band rounds up", with(base(4, 10.5), func(in *Input) { in.Tolerance = -1 }), 5, 5, CodeScaleUp},
		{"steady", with(base(4, 9.9), func(in *Input) { in.Tolerance = -1 }), 4, 4, CodeSteady},
		// Step bound on scale-up.
		{"step bounded", with(base(2, 40), func(in *Input) { in.MaxStepUp = 2 }), 4, 8, CodeScaleUpLimited},
		{"step not binding", with(base(2, 20), func(in *Input) { in.MaxStepUp = 2 }), 4, 4, CodeScaleUp},
		// Scale-down and its stabilization window.
		{"down with empty history", base(4, 5), 2, 2, CodeScaleDown},
		{"down to min", base(4, 0), 2, 2, CodeScaleDown},
		{"at min wants fewer", base(2, 1), 2, 2, CodeAtMin},
		{"held by recent high", with(base(4, 5), func(in *Input) { in.History = []Recommendation{ago(time.Minute, 4)} }), 4, 2, CodeStabilized},
		{"held by higher than current", with(base(4, 5), func(in *Input) { in.History = []Recommendation{ago(time.Minute, 6)} }), 4, 2, CodeStabilized},
		{"partly held", with(base(6, 5), func(in *Input) { in.History = []Recommendation{ago(time.Minute, 4), ago(2*time.Minute, 3)} }), 4, 3, CodeScaleDown},
		{"old high ignored", with(base(4, 5), func(in *Input) { in.History = []Recommendation{ago(5*time.Minute, 8), ago(6*time.Minute, 8)} }), 2, 2, CodeScaleDown},
		{"custom window", with(base(4, 5), func(in *Input) {
			in.Window = time.Minute
			in.History = []Recommendation{ago(61*time.Second, 4)}
		}), 2, 2, CodeScaleDown},
		{"no window", with(base(4, 5), func(in *Input) { in.Window = -1; in.History = []Recommendation{ago(time.Second, 4)} }), 2, 2, CodeScaleDown},
		{"history does not slow scale-up", with(base(2, 30), func(in *Input) { in.History = []Recommendation{ago(time.Minute, 2)} }), 6, 6, CodeScaleUp},
		// Bounds.
		{"below min grows at once", base(0, 0), 2, 2, CodeBelowMin},
		{"below min with load", base(1, 10), 2, 2, CodeBelowMin},
		{"below min, step bound cannot stop it", with(base(0, 0), func(in *Input) { in.Min = 4; in.MaxStepUp = 1 }), 4, 4, CodeBelowMin},
		{"above max shrinks at once", with(base(10, 10), func(in *Input) { in.History = []Recommendation{ago(time.Second, 10)} }), 8, 8, CodeAboveMax},
		{"zero pool with load", with(base(0, 25), func(in *Input) { in.Min = 0 }), 3, 3, CodeScaleUp},
		{"zero pool idle", with(base(0, 0), func(in *Input) { in.Min = 0 }), 0, 0, CodeSteady},
		// Missing metric holds the size, within bounds.
		{"no metric holds", with(base(5, 0), func(in *Input) { in.NoMetric = true }), 5, 5, CodeNoMetric},
		{"no metric still keeps min", with(base(1, 0), func(in *Input) { in.NoMetric = true }), 2, 2, CodeBelowMin},
		{"no metric still keeps max", with(base(9, 0), func(in *Input) { in.NoMetric = true }), 8, 8, CodeAboveMax},
		// Inconsistent input holds and says why.
		{"zero target", with(base(3, 5), func(in *Input) { in.Target = 0 }), 3, 3, CodeInvalid},
		{"max below min", with(base(3, 5), func(in *Input) { in.Max = 1 }), 3, 3, CodeInvalid},
		{"negative current", base(-1, 5), -1, -1, CodeInvalid},
		{"NaN observed", base(3, math.NaN()), 3, 3, CodeInvalid},
		{"infinite observed", base(3, math.Inf(1)), 3, 3, CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.in)
			if d.Desired != tt.desired || d.Recommended != tt.recommended || d.Code != tt.code {
				t.Errorf("Decide = desired %d recommended %d code %s (%s), want %d %d %s",
					d.Desired, d.Recommended, d.Code, d.Reason, tt.desired, tt.recommended, tt.code)
			}
			if d.Reason == "" {
				t.Errorf("Decide code %s has no reason", d.Code)
			}
			if d.Current != tt.in.Current {
				t.Errorf("Decision.Current = %d, want %d", d.Current, tt.in.Current)
			}
		})
	}
}

func TestDecideReasonNamesWindow(t *testing.T) {
	t.Parallel()
	now := time.Now()
	d := Decide(Input{Current: 4, Observed: 1, Target: 10, Min: 1, Max: 8, Now: now,
		History: []Recommendation{{At: now.Add(-90 * time.Second), Replicas: 4}}})
	if d.Code != CodeStabilized || !strings.Contains(d.Reason, "1m30s ago") || !strings.Contains(d.Reason, "5m0s window") {
		t.Errorf("Decide = %s %q, want %s naming the 1m30s-old recommendation and the 5m0s window", d.Code, d.Reason, CodeStabilized)
	}
}

// TestDecideInvariants checks, over a grid of inputs, what must hold for
// any valid input: the result lies in [Min, Max], scale-down never goes
// below a recommendation inside the window, and the step bound holds.
func TestDecideInvariants(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for cur := 0; cur <= 12; cur++ {
		for _, obs := range []float64{0, 1, 4.9, 9, 10, 11.5, 20, 55, 1e12} {
			for _, hist := range []int{0, 3, 7} {
				for _, step := range []int{0, 1, 3} {
					in := Input{Current: cur, Observed: obs, Target: 10, Min: 1, Max: 9, MaxStepUp: step, Now: now}
					if hist > 0 {
						in.History = []Recommendation{{At: now.Add(-time.Minute), Replicas: hist}}
					}
					d := Decide(in)
					if d.Desired < in.Min || d.Desired > in.Max {
						t.Fatalf("%+v: desired %d outside [%d, %d]", in, d.Desired, in.Min, in.Max)
					}
					if d.Desired < cur && cur <= in.Max && d.Desired < min(hist, cur) {
						t.Fatalf("%+v: scaled down to %d below windowed recommendation %d", in, d.Desired, hist)
					}
					if step > 0 && cur >= in.Min && d.Desired > cur+step {
						t.Fatalf("%+v: grew by %d, step bound %d", in, d.Desired-cur, step)
					}
				}
			}
		}
	}
}

func FuzzDecide(f *testing.F) {
	f.Add(3, 12.5, 10.0, 1, 8, 0.1, 0, int64(60))
	f.Add(0, 0.0, 1.0, 0, 1, -1.0, 2, int64(-1))
	f.Add(1<<62, 1e300, 1e-300, 0, 1<<62, math.NaN(), 1<<62, int64(1)<<40)
	f.Fuzz(func(t *testing.T, cur int, obs, target float64, lo, hi int, tol float64, step int, histAgo int64) {
		now := time.Unix(1e9, 0)
		in := Input{Current: cur, Observed: obs, Target: target, Min: lo, Max: hi, Tolerance: tol, MaxStepUp: step, Now: now,
			History: []Recommendation{{At: now.Add(-time.Duration(histAgo) * time.Second), Replicas: hi}}}
		d := Decide(in)
		if d.Code == "" || d.Reason == "" {
			t.Fatalf("%+v: empty code or reason: %+v", in, d)
		}
		if d.Code != CodeInvalid && (d.Desired < lo || d.Desired > hi) {
			t.Fatalf("%+v: desired %d outside [%d, %d]", in, d.Desired, lo, hi)
		}
	})
}
