package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ProberConfig configures a Prober. The zero value of each optional field
// selects the default its comment gives.
type ProberConfig struct {
	// Targets lists what to probe, asked once per round. Required.
	Targets TargetSource
	// Status receives each target's transitions. Required.
	Status StatusSetter
	// Path is the health path appended to each target's URL. If empty,
	// "/healthz" is used.
	Path string
	// Interval is the mean time between rounds; each wait is drawn from
	// 0.8 to 1.2 times it, the first from 0 to 1 times it. If zero, 2s.
	Interval time.Duration
	// Timeout bounds one probe. If zero, 1s is used.
	Timeout time.Duration
	// Rise is how many passes in a row bring an unhealthy target back;
	// Fall, how many failures in a row mark a healthy one unhealthy (as
	// HAProxy's rise and fall). If zero, 2 and 3 are used.
	Rise int
	Fall int
	// ExpectStatus is the status a passing probe returns. If zero, any
	// 2xx or 3xx passes (redirects are not followed).
	ExpectStatus int
	// Concurrency bounds the probes in flight at once. If zero, 16.
	Concurrency int
	// HTTPClient sends the probes. If nil, a client with its own transport
	// that does not follow redirects is used.
	HTTPClient *http.Client
	// Logger receives transitions. If nil, logs are discarded.
	Logger *slog.Logger
}

func (c *ProberConfig) setDefaults() error {
	if c.Targets == nil || c.Status == nil {
		return fmt.Errorf("%w: prober needs Targets and Status", ErrConfig)
	}
	if c.Path == "" {
		c.Path = "/healthz"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Interval, 2*time.Second)
	def(&c.Timeout, time.Second)
	for _, p := range []struct {
		n *int
		v int
	}{{&c.Rise, 2}, {&c.Fall, 3}, {&c.Concurrency, 16}} {
		if *p.n == 0 {
			*p.n = p.v
		}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case !strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, " \t\r\n#"):
		return fmt.Errorf("%w: probe path %q: want an absolute path", ErrConfig, c.Path)
	case c.Interval < 10*time.Millisecond || c.Timeout < time.Millisecond:
		return fmt.Errorf("%w: probe interval %v, timeout %v: want at least 10ms and 1ms", ErrConfig, c.Interval, c.Timeout)
	case c.Rise < 1 || c.Fall < 1 || c.Rise > 100 || c.Fall > 100:
		return fmt.Errorf("%w: rise %d, fall %d: want 1 to 100", ErrConfig, c.Rise, c.Fall)
	case c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599):
		return fmt.Errorf("%w: expected status %d: want 100 to 599", ErrConfig, c.ExpectStatus)
	case c.Concurrency < 1:
		return fmt.Errorf("%w: probe concurrency %d: want at least 1", ErrConfig, c.Concurrency)
	}
	return nil
}

// Prober checks each target's health path every round and reports
// transitions to a StatusSetter with rise/fall hysteresis. A target first
// seen counts as healthy for the fall threshold, so a prober starting up
// takes nothing out of rotation on one failed probe; its first verdict (Rise
// passes or Fall failures) is reported either way, so a new prober, after a
// reload say, corrects whatever an earlier one left behind. After that only
// changes are reported.
// All methods are safe for concurrent use; Run must not run twice at once.
type Prober struct {
	cfg ProberConfig

	// mu guards states.
	mu     sync.Mutex
	states map[string]*probeState

	probes, failures, transitions atomic.Uint64
}

type probeState struct {
	url       string
	healthy   bool
	reported  bool // a verdict was reported for this target
	pass, bad int  // consecutive passes and failures
}

// NewProber validates cfg and returns a Prober. It starts nothing.
func NewProber(cfg ProberConfig) (*Prober, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Prober{cfg: cfg, states: make(map[string]*probeState)}, nil
}

// Run probes every target once per jittered interval until ctx is done,
// then returns nil. A round's probes run concurrently, at most Concurrency
// at a time, and the next round starts only once this one has finished.
func (p *Prober) Run(ctx context.Context) error {
	timer := time.NewTimer(p.jitter(0, 1))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		start := time.Now()
		p.round(ctx)
		timer.Reset(max(p.jitter(0.8, 1.2)-time.Since(start), 0))
	}
}

func (p *Prober) jitter(lo, hi float64) time.Duration {
	return time.Duration((lo + (hi-lo)*rand.Float64()) * float64(p.cfg.Interval))
}

// round probes every current target once.
func (p *Prober) round(ctx context.Context) {
	targets := p.cfg.Targets.Targets()
	p.forget(targets)
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, t := range targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			err := p.probe(ctx, t)
			if ctx.Err() == nil {
				p.record(t, err)
			}
		})
	}
	wg.Wait()
}

// forget drops the state of targets no longer listed.
func (p *Prober) forget(targets []Target) {
	keep := make(map[string]bool, len(targets))
	for _, t := range targets {
		keep[t.ID] = true
	}
	p.mu.Lock()
	for id := range p.states {
		if !keep[id] {
			delete(p.states, id)
		}
	}
	p.mu.Unlock()
}

// probe checks one target: a connection error, a timeout or an unexpected
// status is a failure.
func (p *Prober) probe(ctx context.Context, t Target) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	p.probes.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(t.URL, "/")+p.cfg.Path, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", t.ID, err)
	}
	req.Header.Set("User-Agent", "scaleout-health")
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", t.ID, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	code := resp.StatusCode
	if want := p.cfg.ExpectStatus; want != 0 && code != want || want == 0 && (code < 200 || code > 399) {
		return fmt.Errorf("probe %s: %w: status %d", t.ID, errUnexpectedStatus, code)
	}
	return nil
}

var errUnexpectedStatus = errors.New("unexpected status")

// record counts one probe's outcome and reports a transition.
func (p *Prober) record(t Target, err error) {
	p.mu.Lock()
	st := p.states[t.ID]
	if st == nil || st.url != t.URL {
		st = &probeState{url: t.URL, healthy: true}
		p.states[t.ID] = st
	}
	changed := false
	if err == nil {
		st.pass, st.bad = st.pass+1, 0
		if (!st.healthy || !st.reported) && st.pass >= p.cfg.Rise {
			st.healthy, st.reported, changed = true, true, true
		}
	} else {
		st.pass, st.bad = 0, st.bad+1
		p.failures.Add(1)
		if (st.healthy || !st.reported) && st.bad >= p.cfg.Fall {
			st.healthy, st.reported, changed = false, true, true
		}
	}
	healthy := st.healthy
	p.mu.Unlock()
	if changed {
		p.transitions.Add(1)
		p.cfg.Logger.Info("probe transition", "id", t.ID, "healthy", healthy, "err", err)
		p.cfg.Status.SetHealthy(t.ID, healthy)
	}
}

// ProberStats is a snapshot of a Prober's figures.
type ProberStats struct {
	Probes      uint64 `json:"probes"`
	Failures    uint64 `json:"failures"`
	Transitions uint64 `json:"transitions"` // verdicts reported, first ones included
	Unhealthy   int    `json:"unhealthy"`   // targets now held unhealthy
}

// Stats returns a snapshot of the prober's counters.
func (p *Prober) Stats() ProberStats {
	s := ProberStats{Probes: p.probes.Load(), Failures: p.failures.Load(), Transitions: p.transitions.Load()}
	p.mu.Lock()
	for _, st := range p.states {
		if !st.healthy {
			s.Unhealthy++
		}
	}
	p.mu.Unlock()
	return s
}
