package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SenderConfig configures a Sender. The zero value of each optional field
// selects the default its comment gives.
type SenderConfig struct {
	// Balancers are the base URLs of the balancers' admin listeners
	// ("http://10.0.0.1:9090"); HeartbeatPath is appended unless a URL
	// already ends with it. At least one is required.
	Balancers []string
	// Self is this app server's address as balancers should reach it:
	// http or https, host and explicit port. Required.
	Self string
	// ID names this member. If empty, Self's host:port is used (see
	// IDFromURL).
	ID string
	// Token is the balancers' heartbeat bearer token. Required.
	Token string
	// Interval is the mean time between heartbeats to each balancer; each
	// wait is drawn from 0.8 to 1.2 times it. If zero, 1s is used; 50ms to
	// 1m is accepted.
	Interval time.Duration
	// Capacity is how many requests this server can serve at once, sent in
	// each heartbeat; zero means unknown.
	Capacity int
	// Weight is this server's relative share (1 to 1000); zero lets the
	// balancer keep its current weight.
	Weight int
	// Timeout bounds one heartbeat request. If zero, the interval is used,
	// but at least 500ms.
	Timeout time.Duration
	// LeaveTimeout bounds the final "leaving" heartbeats sent once Run's
	// context is done. If zero, 2s is used.
	LeaveTimeout time.Duration
	// HTTPClient sends the heartbeats. If nil, a client with its own
	// http.Transport is used.
	HTTPClient *http.Client
	// Logger receives failures and recoveries (one line per change, not
	// per heartbeat). If nil, logs are discarded.
	Logger *slog.Logger
}

func (c *SenderConfig) setDefaults() error {
	if len(c.Balancers) == 0 {
		return fmt.Errorf("%w: sender needs at least one balancer URL", ErrConfig)
	}
	if err := ValidateURL(c.Self); err != nil {
		return fmt.Errorf("%w: self: %w", ErrConfig, err)
	}
	if c.ID == "" {
		c.ID, _ = IDFromURL(c.Self)
	}
	if err := ValidateID(c.ID); err != nil {
		return fmt.Errorf("%w: id: %w", ErrConfig, err)
	}
	if c.Token == "" || strings.ContainsAny(c.Token, " \t\r\n") {
		return fmt.Errorf("%w: sender needs a Token without spaces or line breaks", ErrConfig)
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = max(c.Interval, 500*time.Millisecond)
	}
	if c.LeaveTimeout == 0 {
		c.LeaveTimeout = 2 * time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Interval < defaultMinInterval || c.Interval > defaultMaxInterval:
		return fmt.Errorf("%w: interval %v: want %v to %v", ErrConfig, c.Interval, defaultMinInterval, defaultMaxInterval)
	case c.Capacity < 0 || c.Capacity > maxCount:
		return fmt.Errorf("%w: capacity %d: want 0 to %d", ErrConfig, c.Capacity, maxCount)
	case c.Weight < 0 || c.Weight > MaxWeight:
		return fmt.Errorf("%w: weight %d: want 0 to %d", ErrConfig, c.Weight, MaxWeight)
	case c.Timeout < 0 || c.LeaveTimeout < 0:
		return fmt.Errorf("%w: timeouts must not be negative", ErrConfig)
	}
	return nil
}

// Sender pushes this app server's heartbeats to every balancer: Run sends
// them at a jittered interval, Middleware counts the in-flight requests
// they report, SetState announces draining, and when Run's context ends a
// final "leaving" heartbeat takes the server out of every pool at once.
// All methods are safe for concurrent use; Run must not run twice at once.
type Sender struct {
	cfg       SenderConfig
	endpoints []string
	kicks     []chan struct{} // one per balancer: send now

	inFlight atomic.Int64
	draining atomic.Bool
	// seq starts at the construction time in nanoseconds so that a
	// restarted server's heartbeats still count upward.
	seq    atomic.Uint64
	sent   atomic.Uint64
	failed atomic.Uint64
}

// NewSender validates cfg and returns a Sender. It starts nothing.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Sender{cfg: cfg}
	for _, b := range cfg.Balancers {
		u, err := url.Parse(b)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("%w: balancer URL %q: want http(s)://host:port", ErrConfig, b)
		}
		ep := strings.TrimSuffix(u.String(), "/")
		if !strings.HasSuffix(ep, HeartbeatPath) {
			ep += HeartbeatPath
		}
		s.endpoints = append(s.endpoints, ep)
		s.kicks = append(s.kicks, make(chan struct{}, 1))
	}
	s.seq.Store(uint64(max(time.Now().UnixNano(), 0)))
	return s, nil
}

// ID returns the member ID the sender announces.
func (s *Sender) ID() string { return s.cfg.ID }

// Middleware counts the requests next is serving; every heartbeat reports
// the count. It adds no allocation per request.
func (s *Sender) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		next.ServeHTTP(w, r)
	})
}

// InFlight returns the number of requests Middleware is counting now.
func (s *Sender) InFlight() int64 { return s.inFlight.Load() }

// SetState announces StateReady or StateDraining; a change is sent to
// every balancer at once rather than at the next tick. Any other state is
// an error (leaving is sent when Run's context ends).
func (s *Sender) SetState(st MemberState) error {
	var drain bool
	switch st {
	case StateReady:
	case StateDraining:
		drain = true
	default:
		return fmt.Errorf("sender state %q: want ready or draining", st)
	}
	if s.draining.Swap(drain) != drain {
		for _, k := range s.kicks {
			select {
			case k <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

// SenderStats is a snapshot of a Sender's figures.
type SenderStats struct {
	Sent     uint64 `json:"sent"`   // heartbeats a balancer accepted
	Failed   uint64 `json:"failed"` // heartbeats that failed or were refused
	InFlight int64  `json:"in_flight"`
}

// Stats returns a snapshot of the sender's counters.
func (s *Sender) Stats() SenderStats {
	return SenderStats{Sent: s.sent.Load(), Failed: s.failed.Load(), InFlight: s.inFlight.Load()}
}

// Run sends heartbeats to every balancer until ctx is done, each balancer
// on its own jittered schedule (the first one too, so servers started
// together do not send in step). It then sends "leaving" to every balancer,
// bounded by LeaveTimeout, and returns an error only if some of those
// failed.
func (s *Sender) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range s.endpoints {
		wg.Go(func() { s.loop(ctx, i) })
	}
	wg.Wait()
	return s.leave(ctx)
}

// jitter returns a wait drawn uniformly from lo to hi times the interval.
func (s *Sender) jitter(lo, hi float64) time.Duration {
	return time.Duration((lo + (hi-lo)*rand.Float64()) * float64(s.cfg.Interval))
}

func (s *Sender) loop(ctx context.Context, i int) {
	timer := time.NewTimer(s.jitter(0, 1))
	defer timer.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.kicks[i]:
		}
		start := time.Now()
		state := StateReady
		if s.draining.Load() {
			state = StateDraining
		}
		err := s.send(ctx, i, state, s.cfg.Timeout)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			s.cfg.Logger.Warn("heartbeat failed", "balancer", s.endpoints[i], "err", err)
		case err == nil && failing:
			s.cfg.Logger.Info("heartbeat delivered again", "balancer", s.endpoints[i])
		}
		failing = err != nil
		timer.Reset(max(s.jitter(0.8, 1.2)-time.Since(start), 0))
	}
}

// leave sends "leaving" to every balancer at once, with a fresh deadline
// since ctx is already done.
func (s *Sender) leave(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.LeaveTimeout)
	defer cancel()
	errs := make([]error, len(s.endpoints))
	var wg sync.WaitGroup
	for i := range s.endpoints {
		wg.Go(func() { errs[i] = s.send(lctx, i, StateLeaving, s.cfg.LeaveTimeout) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("leaving: %w", err)
	}
	s.cfg.Logger.Info("left every balancer", "id", s.cfg.ID, "balancers", len(s.endpoints))
	return nil
}

// send posts one heartbeat to balancer i.
func (s *Sender) send(ctx context.Context, i int, state MemberState, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := json.Marshal(Heartbeat{
		ID: s.cfg.ID, URL: s.cfg.Self, State: state,
		InFlight: s.inFlight.Load(), Capacity: int64(s.cfg.Capacity),
		IntervalMS: s.cfg.Interval.Milliseconds(), Weight: int64(s.cfg.Weight), Seq: s.seq.Add(1),
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoints[i], strings.NewReader(string(body)))
	if err != nil {
		return fmt.Errorf("heartbeat to %s: %w", s.endpoints[i], err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		s.failed.Add(1)
		return fmt.Errorf("heartbeat to %s: %w", s.endpoints[i], err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		s.sent.Add(1)
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		s.failed.Add(1)
		return fmt.Errorf("heartbeat to %s: %w: %s: %s", s.endpoints[i], ErrRefused, resp.Status, strings.TrimSpace(string(msg)))
	default:
		s.failed.Add(1)
		return fmt.Errorf("heartbeat to %s: %s", s.endpoints[i], resp.Status)
	}
}
