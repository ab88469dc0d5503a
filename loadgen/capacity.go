package loadgen

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// SearchConfig describes a capacity search: open-loop steps at rising
// rates, then a bisection, to find the highest rate a server sustains with
// its p99 latency under SLO and its error ratio within ErrorBudget.
type SearchConfig struct {
	// Load gives the targets and per-request settings (Connections,
	// Timeout, DisableKeepAlive, TLS, Logger). Its Rate, Duration,
	// Requests and Progress are set by the search for each step.
	Load Config

	// SLO is the p99 latency a step must stay under. If zero, 50ms.
	SLO time.Duration

	// ErrorBudget is the largest fraction of failed requests (0..1) a step
	// may have. If zero, 0.01 (1%).
	ErrorBudget float64

	// StartRate is the first step's rate in requests per second; each
	// ramp step doubles it. If zero, 50.
	StartRate float64

	// MaxRate bounds the search: the ramp stops there. If zero, 100000.
	MaxRate float64

	// StepDuration is how long each step sends load. If zero, 5s.
	StepDuration time.Duration

	// Precision ends the bisection once the bracket around the knee is
	// narrower than this fraction of its upper end. If zero, 0.05.
	Precision float64

	// MinAchieved is the fraction of the offered rate a step must achieve
	// to count; a step that falls short (the server, or the generator,
	// could not keep up) is discarded as a failure. If zero, 0.95.
	MinAchieved float64

	// OnStep, if not nil, is called after each step, from Run's goroutine.
	OnStep func(Step)
}

// Search finds a server's capacity. It is not safe for concurrent use.
type Search struct {
	cfg SearchConfig
}

// Verdicts of a Step.
const (
	VerdictPass   = "pass"   // within SLO and error budget
	VerdictShort  = "short"  // achieved rate fell short of the offered rate
	VerdictSLO    = "slo"    // p99 over the SLO
	VerdictErrors = "errors" // error ratio over the budget
)

// Step is one step of a capacity search: StepDuration of open-loop load
// at OfferedRPS.
type Step struct {
	// Phase is "ramp" (doubling the rate) or "bisect".
	Phase string `json:"phase"`
	// OfferedRPS is the step's arrival rate; AchievedRPS what it achieved.
	OfferedRPS  float64 `json:"offered_rps"`
	AchievedRPS float64 `json:"achieved_rps"`
	// P99MS is the step's p99 latency in ms, timed from scheduled starts.
	P99MS float64 `json:"p99_ms"`
	// ErrorRatio is the fraction of the step's requests that failed.
	ErrorRatio float64 `json:"error_ratio"`
	// StartedLate counts requests that started more than 5ms late.
	StartedLate int64 `json:"started_late"`
	// Verdict is one of the Verdict constants.
	Verdict string `json:"verdict"`
}

// Capacity is the outcome of a Search.
type Capacity struct {
	// KneeRPS is the highest rate that passed; 0 if none did.
	KneeRPS float64 `json:"knee_rps"`
	// AtMax says the ramp reached MaxRate without failing: the knee is
	// at least KneeRPS.
	AtMax bool `json:"at_max"`
	// SLOMS and ErrorBudget are the criteria the steps were judged by.
	SLOMS       float64 `json:"slo_ms"`
	ErrorBudget float64 `json:"error_budget"`
	// TargetLowRPS and TargetHighRPS are 70% and 80% of the knee: the
	// suggested per-instance load target for an autoscaler, leaving
	// headroom for bursts and for the time new instances take to start.
	TargetLowRPS  float64 `json:"autoscale_target_low_rps"`
	TargetHighRPS float64 `json:"autoscale_target_high_rps"`
	Steps         []Step  `json:"steps"`
}

// maxSteps bounds a search however its settings are chosen.
const maxSteps = 40

// stepPause separates steps so queues built up by a failed step drain
// before the next one is measured.
const stepPause = 250 * time.Millisecond

// NewSearch validates cfg, including its Load targets, and returns a Search.
func NewSearch(cfg SearchConfig) (*Search, error) {
	switch {
	case cfg.SLO < 0:
		return nil, fmt.Errorf("%w: slo %v: must be positive", ErrBadConfig, cfg.SLO)
	case cfg.ErrorBudget < 0 || cfg.ErrorBudget >= 1 || math.IsNaN(cfg.ErrorBudget):
		return nil, fmt.Errorf("%w: error budget %v: must be a fraction in [0, 1)", ErrBadConfig, cfg.ErrorBudget)
	case cfg.StartRate < 0 || math.IsNaN(cfg.StartRate) || math.IsInf(cfg.StartRate, 0):
		return nil, fmt.Errorf("%w: start rate %v: must be positive", ErrBadConfig, cfg.StartRate)
	case cfg.MaxRate < 0 || math.IsNaN(cfg.MaxRate) || math.IsInf(cfg.MaxRate, 0):
		return nil, fmt.Errorf("%w: max rate %v: must be positive", ErrBadConfig, cfg.MaxRate)
	case cfg.StepDuration < 0:
		return nil, fmt.Errorf("%w: step duration %v: must be positive", ErrBadConfig, cfg.StepDuration)
	case cfg.Precision < 0 || cfg.Precision >= 1 || math.IsNaN(cfg.Precision):
		return nil, fmt.Errorf("%w: precision %v: must be a fraction in (0, 1)", ErrBadConfig, cfg.Precision)
	case cfg.MinAchieved < 0 || cfg.MinAchieved > 1 || math.IsNaN(cfg.MinAchieved):
		return nil, fmt.Errorf("%w: min achieved %v: must be a fraction in (0, 1]", ErrBadConfig, cfg.MinAchieved)
	}
	if cfg.SLO == 0 {
		cfg.SLO = 50 * time.Millisecond
	}
	if cfg.ErrorBudget == 0 {
		cfg.ErrorBudget = 0.01
	}
	if cfg.StartRate == 0 {
		cfg.StartRate = 50
	}
	if cfg.MaxRate == 0 {
		cfg.MaxRate = 100000
	}
	if cfg.MaxRate < cfg.StartRate {
		return nil, fmt.Errorf("%w: max rate %v is below start rate %v", ErrBadConfig, cfg.MaxRate, cfg.StartRate)
	}
	if cfg.StepDuration == 0 {
		cfg.StepDuration = 5 * time.Second
	}
	if cfg.Precision == 0 {
		cfg.Precision = 0.05
	}
	if cfg.MinAchieved == 0 {
		cfg.MinAchieved = 0.95
	}
	if _, err := New(stepConfig(cfg, cfg.StartRate)); err != nil {
		return nil, err
	}
	return &Search{cfg: cfg}, nil
}

// stepConfig is the load of one step at rate.
func stepConfig(cfg SearchConfig, rate float64) Config {
	c := cfg.Load
	c.Rate, c.Duration, c.Requests, c.Progress = rate, cfg.StepDuration, 0, nil
	return c
}

// Run ramps the rate up from StartRate, doubling it while steps pass, then
// bisects between the last rate that passed and the first that failed. It
// returns the knee found, or ctx's error with the steps so far.
func (s *Search) Run(ctx context.Context) (*Capacity, error) {
	cfg := s.cfg
	out := &Capacity{SLOMS: float64(cfg.SLO.Microseconds()) / 1000, ErrorBudget: cfg.ErrorBudget}
	g, err := New(stepConfig(cfg, cfg.StartRate))
	if err != nil {
		return nil, err
	}
	if err := g.Check(ctx); err != nil {
		return nil, err
	}
	lo, hi := 0.0, 0.0 // highest pass, lowest failure (0: none yet)
	for rate := cfg.StartRate; hi == 0; rate = min(rate*2, cfg.MaxRate) {
		ok, err := s.step(ctx, out, "ramp", rate)
		if err != nil {
			return out, err
		}
		if !ok {
			hi = rate
			break
		}
		lo = rate
		if rate >= cfg.MaxRate {
			out.AtMax = true
			break
		}
	}
	for hi > 0 && hi-lo > cfg.Precision*hi && len(out.Steps) < maxSteps {
		mid := (lo + hi) / 2
		ok, err := s.step(ctx, out, "bisect", mid)
		if err != nil {
			return out, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	out.KneeRPS = lo
	out.TargetLowRPS, out.TargetHighRPS = 0.7*lo, 0.8*lo
	return out, nil
}

// step runs one open-loop step at rate, records it and reports whether it
// passed.
func (s *Search) step(ctx context.Context, out *Capacity, phase string, rate float64) (bool, error) {
	if len(out.Steps) > 0 {
		select {
		case <-time.After(stepPause):
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	g, err := New(stepConfig(s.cfg, rate))
	if err != nil {
		return false, err
	}
	res, err := g.run(ctx)
	if err != nil {
		return false, err
	}
	st := Step{
		Phase: phase, OfferedRPS: rate, AchievedRPS: res.AchievedRPS,
		P99MS: res.Latency.P99, StartedLate: res.StartedLate, Verdict: VerdictPass,
	}
	if res.Requests > 0 {
		st.ErrorRatio = float64(res.Errors) / float64(res.Requests)
	}
	switch {
	case res.AchievedRPS < s.cfg.MinAchieved*rate:
		st.Verdict = VerdictShort
	case st.ErrorRatio > s.cfg.ErrorBudget:
		st.Verdict = VerdictErrors
	case res.Latency.P99 > out.SLOMS:
		st.Verdict = VerdictSLO
	}
	out.Steps = append(out.Steps, st)
	if s.cfg.OnStep != nil {
		s.cfg.OnStep(st)
	}
	return st.Verdict == VerdictPass, nil
}

// WriteText writes the knee, the suggested autoscaling target and the table
// of steps.
func (c *Capacity) WriteText(w io.Writer) error {
	var b strings.Builder
	b.WriteString("step  phase   offered/s  achieved/s   p99 ms  errors   late  verdict\n")
	for i, st := range c.Steps {
		fmt.Fprintf(&b, "%4d  %-6s %10.1f %11.1f %8s %6.2f%% %6d  %s\n", i+1, st.Phase, st.OfferedRPS,
			st.AchievedRPS, num(st.P99MS), 100*st.ErrorRatio, st.StartedLate, st.Verdict)
	}
	switch {
	case c.KneeRPS == 0:
		fmt.Fprintf(&b, "No rate passed (p99 under %sms, errors under %.2f%%): the knee is below the first step.\n",
			num(c.SLOMS), 100*c.ErrorBudget)
	default:
		at := ""
		if c.AtMax {
			at = " (the maximum rate searched; the real knee may be higher)"
		}
		fmt.Fprintf(&b, "Knee: %.1f req/s%s with p99 under %sms and errors under %.2f%%.\n",
			c.KneeRPS, at, num(c.SLOMS), 100*c.ErrorBudget)
		fmt.Fprintf(&b, "Suggested autoscaling target: %.0f-%.0f req/s per instance (70-80%% of the knee).\n",
			c.TargetLowRPS, c.TargetHighRPS)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
