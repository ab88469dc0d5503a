// Package autoscale grows and shrinks a pool of app servers between a
// minimum and a maximum, driven by what the balancer already sees.
//
// It has two halves kept apart. Decide is a pure function: it takes the
// current pool size, the observed metric and the recent recommendations
// and returns the desired size with its reason, following the rule of
// Kubernetes' Horizontal Pod Autoscaler (desired = ceil(current x
// observed / target), a tolerance band around the target, immediate
// scale-up and a stabilization window before scale-down). Scaler is the
// loop that observes the pool through a Source, calls Decide, and applies
// the result: it starts instances through a Provider, drains a victim
// through a Drainer before stopping it, and replaces instances that crash.
//
// The package never imports the balancer: the Source, Drainer and Pool
// interfaces say what it needs, and the balancer's owner adapts to them.
// Providers live in subpackages: localproc (local processes from a command
// template) and hook (a user's script that adds or removes a server).
package autoscale

import (
	"fmt"
	"math"
	"time"
)

// Code names the rule behind a Decision (or a Scaler event), for
// counters and logs. Codes are stable strings; add, never rename.
type Code string

// The codes Decide and Scaler produce.
const (
	// CodeScaleUp: the metric is above the band; the pool grows at once.
	CodeScaleUp Code = "scale_up"
	// CodeScaleUpLimited: as CodeScaleUp, but bounded by Input.MaxStepUp.
	CodeScaleUpLimited Code = "scale_up_limited"
	// CodeScaleDown: the metric is below the band and every recommendation
	// in the stabilization window allows the smaller pool.
	CodeScaleDown Code = "scale_down"
	// CodeStabilized: the metric is below the band but a recommendation in
	// the stabilization window is still at the current size, so it holds.
	CodeStabilized Code = "scale_down_stabilized"
	// CodeInTolerance: the metric is within the tolerance band; no change.
	CodeInTolerance Code = "within_tolerance"
	// CodeSteady: the computed size equals the current one.
	CodeSteady Code = "steady"
	// CodeAtMax: more instances are wanted but the pool is at Max.
	CodeAtMax Code = "at_max"
	// CodeAtMin: fewer instances are wanted but the pool is at Min.
	CodeAtMin Code = "at_min"
	// CodeBelowMin: the pool is smaller than Min; it grows to Min at once.
	CodeBelowMin Code = "below_min"
	// CodeAboveMax: the pool is larger than Max; it shrinks to Max at once.
	CodeAboveMax Code = "above_max"
	// CodeNoMetric: no usable observation; the size holds (within bounds).
	CodeNoMetric Code = "no_metric"
	// CodeInvalid: the Input is inconsistent (Target <= 0, Max < Min, ...);
	// the size holds. New refuses such settings, so Scaler never sees it.
	CodeInvalid Code = "invalid_input"
	// CodeReplaced: Scaler started an instance to replace one that exited
	// without being asked to (never returned by Decide).
	CodeReplaced Code = "replace_crashed"
	// CodeStartFailed: Scaler's Provider failed to start an instance
	// (never returned by Decide).
	CodeStartFailed Code = "start_failed"
	// CodeLost: an instance that had joined the pool was out of it (gone or
	// not ready) for Config.LostAfter; Scaler stopped and replaced it
	// (never returned by Decide).
	CodeLost Code = "replace_lost"
)

// Defaults for Input and Config fields left zero.
const (
	DefaultTolerance = 0.1
	DefaultWindow    = 5 * time.Minute
)

// Recommendation is the pool size Decide recommended at one time, before
// stabilization. Scale-down goes no lower than the highest recommendation
// inside the window.
type Recommendation struct {
	At       time.Time
	Replicas int
}

// Input is everything Decide looks at. Decide does not keep or modify it.
type Input struct {
	// Current is the pool's size so far: the last desired size, as HPA's
	// currentReplicas is the spec's (an instance being started or replaced
	// counts; one draining does not). It must not be negative.
	Current int
	// Observed is the metric's value: per member for in-flight requests and
	// queue length, the pool's p95 in milliseconds for latency. It must
	// not be negative.
	Observed float64
	// NoMetric says Observed is unusable (the source failed, or no member
	// has joined yet): the size holds within [Min, Max].
	NoMetric bool
	// Target is the metric's desired value, in Observed's unit; it must be
	// positive.
	Target float64
	// Min and Max bound the result; 0 <= Min <= Max, Max >= 1.
	Min, Max int
	// Tolerance is the band around Target, as a fraction, inside which
	// nothing changes. If zero, DefaultTolerance (10%) is used; if
	// negative, there is no band.
	Tolerance float64
	// MaxStepUp bounds how many instances one decision adds (growing to
	// Min is never bounded). If zero, there is no bound: the pool grows to
	// the recommendation at once. It must not be negative.
	MaxStepUp int
	// Now is the time of the decision.
	Now time.Time
	// Window is the scale-down stabilization window. If zero,
	// DefaultWindow (5 min, as HPA) is used; if negative, there is none.
	Window time.Duration
	// History holds earlier recommendations, in any order; those older than
	// Window are ignored. The caller appends Decision.Recommended to it.
	History []Recommendation
}

// Decision is what Decide returns: the size to converge to, why, and the
// raw recommendation to remember for later stabilization.
type Decision struct {
	Current int `json:"current"`
	Desired int `json:"desired"`
	// Recommended is this round's recommendation (within [Min, Max],
	// before stabilization and step bounds).
	Recommended int `json:"recommended"`
	// Ratio is Observed / Target (0 when unknown).
	Ratio  float64 `json:"ratio"`
	Code   Code    `json:"code"`
	Reason string  `json:"reason"`
}

// Decide applies the HPA rule to in. It is pure and safe for concurrent
// use.
//
// The order follows the Kubernetes HPA controller: the raw recommendation
// is ceil(current x observed/target), or the current size when the ratio
// is within the tolerance band; it is clamped to [Min, Max] and recorded.
// Growth happens at once (bounded by MaxStepUp); shrinking goes only down
// to the highest recommendation inside the window, so one quiet moment
// does not remove capacity that a burst a minute ago needed.
func Decide(in Input) Decision {
	d := Decision{Current: in.Current, Desired: in.Current, Recommended: in.Current}
	if err := in.check(); err != "" {
		d.Code, d.Reason = CodeInvalid, err
		return d
	}
	if in.NoMetric {
		d.Recommended = clamp(in.Current, in.Min, in.Max)
		d.Desired = d.Recommended
		return bounded(in, d, CodeNoMetric, "no usable observation; holding")
	}
	d.Ratio = in.Observed / in.Target
	raw, within := rawRecommendation(in, d.Ratio)
	rec := clamp(raw, in.Min, in.Max)
	d.Recommended = rec
	switch {
	case rec > in.Current:
		return scaleUp(in, d, raw)
	case rec < in.Current:
		return scaleDown(in, d)
	case within:
		d.Code, d.Reason = CodeInTolerance, fmt.Sprintf("ratio %.3f within tolerance %.0f%% of target %g", d.Ratio, tolerance(in)*100, in.Target)
	case raw > in.Max:
		d.Code, d.Reason = CodeAtMax, fmt.Sprintf("wanted %d, at max %d", raw, in.Max)
	case raw < in.Min:
		d.Code, d.Reason = CodeAtMin, fmt.Sprintf("wanted %d, at min %d", raw, in.Min)
	default:
		d.Code, d.Reason = CodeSteady, fmt.Sprintf("ratio %.3f gives %d, the current size", d.Ratio, rec)
	}
	return d
}

// check returns what is wrong with in, or "".
func (in *Input) check() string {
	switch {
	case in.Current < 0 || in.MaxStepUp < 0:
		return fmt.Sprintf("current %d or max step up %d is negative", in.Current, in.MaxStepUp)
	case in.Min < 0 || in.Max < 1 || in.Max < in.Min:
		return fmt.Sprintf("bounds [%d, %d] invalid: want 0 <= min <= max, max >= 1", in.Min, in.Max)
	case !(in.Target > 0) || math.IsInf(in.Target, 0):
		return fmt.Sprintf("target %g is not a positive number", in.Target)
	case !in.NoMetric && (!(in.Observed >= 0) || math.IsInf(in.Observed, 0)):
		return fmt.Sprintf("observed %g is not a finite number >= 0", in.Observed)
	}
	return ""
}

func tolerance(in Input) float64 {
	switch {
	case in.Tolerance == 0:
		return DefaultTolerance
	case in.Tolerance < 0:
		return 0
	}
	return in.Tolerance
}

func window(in Input) time.Duration {
	switch {
	case in.Window == 0:
		return DefaultWindow
	case in.Window < 0:
		return 0
	}
	return in.Window
}

// rawRecommendation is HPA's replica calculation. A pool of zero has no
// per-member figure to multiply: any load then asks for
// ceil(observed/target) instances, at least one.
func rawRecommendation(in Input, ratio float64) (raw int, within bool) {
	if in.Current == 0 {
		if in.Observed == 0 {
			return 0, false
		}
		return max(1, ceilInt(ratio)), false
	}
	if math.Abs(ratio-1) <= tolerance(in)+1e-9 { // the band is inclusive; 1e-9 absorbs float error
		return in.Current, true
	}
	return ceilInt(float64(in.Current) * ratio), false
}

// ceilInt rounds up, saturating far beyond any pool size. A tiny epsilon
// keeps 3 x (10/10) from becoming 4 through float error.
func ceilInt(f float64) int {
	if f > 1e9 {
		return 1e9
	}
	return int(math.Ceil(f - 1e-9))
}

func clamp(n, lo, hi int) int { return min(max(n, lo), hi) }

func scaleUp(in Input, d Decision, raw int) Decision {
	d.Desired = d.Recommended
	code, why := CodeScaleUp, fmt.Sprintf("ratio %.3f of target %g wants %d", d.Ratio, in.Target, raw)
	if in.Current < in.Min {
		code, why = CodeBelowMin, fmt.Sprintf("%d below min %d", in.Current, in.Min)
	}
	if in.MaxStepUp > 0 && d.Desired-in.Current > in.MaxStepUp {
		d.Desired = max(in.Current+in.MaxStepUp, in.Min)
		if d.Desired < d.Recommended {
			code = CodeScaleUpLimited
			why += fmt.Sprintf(", step bounded to +%d", in.MaxStepUp)
		}
	}
	if raw > in.Max {
		why += fmt.Sprintf(", capped at max %d", in.Max)
	}
	d.Code, d.Reason = code, why
	return d
}

func scaleDown(in Input, d Decision) Decision {
	hold, at := d.Recommended, time.Time{}
	if w := window(in); w > 0 {
		for _, r := range in.History {
			if in.Now.Sub(r.At) < w && r.Replicas > hold {
				hold, at = r.Replicas, r.At
			}
		}
	}
	hold = clamp(hold, in.Min, in.Max)
	if in.Current > in.Max {
		d.Desired = min(hold, in.Max)
		d.Code, d.Reason = CodeAboveMax, fmt.Sprintf("%d above max %d", in.Current, in.Max)
		return d
	}
	if hold >= in.Current {
		d.Code, d.Reason = CodeStabilized, fmt.Sprintf("ratio %.3f wants %d, holding %d: recommended %s ago within the %v window", d.Ratio, d.Recommended, in.Current, in.Now.Sub(at).Round(time.Second), window(in))
		return d
	}
	d.Desired = hold
	d.Code, d.Reason = CodeScaleDown, fmt.Sprintf("ratio %.3f of target %g wants %d", d.Ratio, in.Target, d.Recommended)
	if hold > d.Recommended {
		d.Reason += fmt.Sprintf(", to %d: highest in the %v window", hold, window(in))
	}
	return d
}

// bounded applies Min and Max to a decision that otherwise holds.
func bounded(in Input, d Decision, code Code, why string) Decision {
	switch {
	case in.Current < in.Min:
		d.Code, d.Reason = CodeBelowMin, fmt.Sprintf("%d below min %d (%s)", in.Current, in.Min, why)
	case in.Current > in.Max:
		d.Code, d.Reason = CodeAboveMax, fmt.Sprintf("%d above max %d (%s)", in.Current, in.Max, why)
	default:
		d.Code, d.Reason = code, why
	}
	return d
}
