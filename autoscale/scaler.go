package autoscale

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Scaler keeps a pool of instances sized by Decide. Create it with New and
// run it with Run; Stats is safe for concurrent use at any time.
type Scaler struct {
	cfg     Config
	log     *slog.Logger
	running atomic.Bool

	// mu guards stats.
	mu    sync.Mutex
	stats Stats
}

// New validates cfg, applies its defaults and returns a Scaler. It starts
// nothing; Run does.
func New(cfg Config) (*Scaler, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Scaler{cfg: cfg, log: cfg.Logger}
	s.stats = Stats{Metric: cfg.Metric, Target: cfg.Target, Min: cfg.Min, Max: cfg.Max, Counts: map[Code]uint64{}}
	return s, nil
}

// crash backoff: a start failure, or an instance that ends within
// crashLoopAge of its start, delays the next start by 1s, 2s, 4s ... up
// to maxBackoff, so a broken command does not spin.
const (
	crashLoopAge = 10 * time.Second
	maxBackoff   = time.Minute
)

// instance is the loop's record of one instance.
type instance struct {
	Instance
	started time.Time
	// joined is set once the instance is seen ready in an Observation;
	// outSince is when a joined instance was last seen leaving the pool.
	joined   bool
	outSince time.Time
}

// event is what helper goroutines report to the loop.
type event struct {
	kind    eventKind
	inst    Instance // started
	id      string   // exited, drained
	err     error    // started, drained (drain error)
	stopErr error    // drained
}

type eventKind int

const (
	evStarted eventKind = iota
	evExited
	evDrained
)

// run is the state of one Run; only Run's goroutine touches it.
type run struct {
	s       *Scaler
	cfg     *Config
	events  chan event
	done    chan struct{} // closed when Run stops reading events
	helpers sync.WaitGroup
	hctx    context.Context // helpers' context, cancelled on shutdown

	desired  int
	pending  int // starts in progress
	running  map[string]*instance
	draining map[string]*instance
	history  []Recommendation
	lastObs  Observation
	observed float64

	failures     int
	blockedUntil time.Time
	lastFailure  time.Time
	retry        *time.Timer
}

// Run keeps Min instances running, then decides every Interval and applies
// the decision, until ctx is done. It then stops every instance it started
// (bounded by StopTimeout) and returns nil. Instances it did not start are
// never touched. Run returns ErrRunning if called while running.
func (s *Scaler) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	hctx, cancel := context.WithCancel(ctx)
	r := &run{
		s: s, cfg: &s.cfg, events: make(chan event), done: make(chan struct{}), hctx: hctx,
		desired: s.cfg.Min, running: map[string]*instance{}, draining: map[string]*instance{},
		retry: time.NewTimer(time.Hour),
	}
	r.retry.Stop()
	defer r.retry.Stop()
	defer r.shutdown(cancel)
	r.reconcile()
	r.publish(nil)
	tick := time.NewTimer(time.Duration(rand.Float64() * float64(s.cfg.Interval)))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			r.tick(ctx)
			tick.Reset(s.jitter())
		case <-r.retry.C:
			r.reconcile()
		case ev := <-r.events:
			r.handle(ev)
		}
	}
}

// jitter returns Interval +-10%.
func (s *Scaler) jitter() time.Duration {
	return time.Duration(float64(s.cfg.Interval) * (0.9 + 0.2*rand.Float64()))
}

func (r *run) current() int { return r.pending + len(r.running) }

// tick observes, decides and applies.
func (r *run) tick(ctx context.Context) {
	octx, cancel := context.WithTimeout(ctx, r.cfg.Interval)
	obs, err := r.cfg.Source.Observe(octx)
	cancel()
	now := time.Now()
	if err == nil {
		r.lastObs = obs
		r.findLost(obs, now)
	}
	in := Input{
		Current: r.desired, Target: r.cfg.Target, Min: r.cfg.Min, Max: r.cfg.Max,
		Tolerance: r.cfg.Tolerance, MaxStepUp: r.cfg.MaxStepUp, Now: now,
		Window: r.cfg.ScaleDownWindow, History: r.history,
	}
	if err != nil {
		r.s.log.Warn("autoscale: observe failed", "err", err)
		in.NoMetric = true
	} else {
		in.Observed, in.NoMetric = observed(r.cfg.Metric, obs, in.Current)
	}
	r.observed = in.Observed
	d := Decide(in)
	r.remember(now, d.Recommended)
	r.desired = d.Desired
	r.log(d, in.Observed)
	r.count(d.Code)
	if d.Desired != d.Current {
		r.addEvent(Event{Time: now, From: d.Current, To: d.Desired, Code: d.Code, Reason: d.Reason})
	}
	if r.failures > 0 && now.Sub(r.lastFailure) > maxBackoff {
		r.failures = 0
	}
	r.reconcile()
	r.publish(&d)
}

// findLost takes out of running every instance that had joined the pool
// and has been out of it for LostAfter, stops it, and lets reconcile
// replace it.
func (r *run) findLost(obs Observation, now time.Time) {
	if r.cfg.LostAfter < 0 {
		return
	}
	ready := make(map[string]bool, len(obs.Members))
	for _, m := range obs.Members {
		if m.Ready {
			ready[m.ID] = true
		}
	}
	for id, in := range r.running {
		switch {
		case ready[id]:
			in.joined, in.outSince = true, time.Time{}
		case !in.joined:
		case in.outSince.IsZero():
			in.outSince = now
		case now.Sub(in.outSince) >= r.cfg.LostAfter:
			delete(r.running, id)
			r.unasked(in, CodeLost)
			r.s.log.Warn("autoscale: instance lost from the pool; replacing", "id", id, "out_for", now.Sub(in.outSince))
			r.addEvent(Event{Time: now, From: r.current() + 1, To: r.desired, Code: CodeLost, Reason: "instance " + id + " out of the pool for " + now.Sub(in.outSince).String()})
			r.helpers.Go(func() {
				if err := r.stop(id); err != nil {
					r.s.log.Warn("autoscale: stop of lost instance failed", "id", id, "err", err)
				}
			})
		}
	}
}

// observed turns an Observation into the metric's value. current is the
// desired size, as HPA's currentReplicas is the spec's, not the pods
// running: an instance being replaced still counts. Instances that
// have not joined yet count as idle members (as HPA counts unready pods
// on scale-up), so a pool that is starting does not scale up again.
func observed(m Metric, obs Observation, current int) (v float64, noMetric bool) {
	ready, inFlight := 0, int64(0)
	for _, mb := range obs.Members {
		if mb.Ready {
			ready++
			inFlight += max(mb.InFlight, 0)
		}
	}
	members := float64(max(ready, current, 1))
	switch m {
	case MetricLatencyP95:
		return float64(obs.P95) / float64(time.Millisecond), false
	case MetricQueue:
		return float64(max(obs.Queue, 0)) / members, false
	}
	if ready == 0 && current > 0 {
		return 0, true
	}
	return float64(inFlight) / members, false
}

// remember appends a recommendation and drops those past the window.
func (r *run) remember(now time.Time, replicas int) {
	w := r.cfg.ScaleDownWindow
	r.history = slices.DeleteFunc(r.history, func(h Recommendation) bool { return w <= 0 || now.Sub(h.At) >= w })
	r.history = append(r.history, Recommendation{At: now, Replicas: replicas})
}

func (r *run) log(d Decision, observed float64) {
	level := slog.LevelDebug
	if d.Desired != d.Current {
		level = slog.LevelInfo
	}
	r.s.log.Log(context.Background(), level, "autoscale decision",
		"from", d.Current, "to", d.Desired, "code", string(d.Code), "reason", d.Reason,
		"metric", string(r.cfg.Metric), "observed", observed, "target", r.cfg.Target)
}

// reconcile starts or drains instances until running + starting equals
// desired. Starts wait out a crash backoff; victims come from running
// instances only (a start in progress cannot be taken back).
func (r *run) reconcile() {
	now := time.Now()
	if n := r.desired - r.current(); n > 0 {
		if now.Before(r.blockedUntil) {
			r.retry.Reset(r.blockedUntil.Sub(now))
			return
		}
		for range n {
			r.start()
		}
		return
	}
	for n := r.current() - r.desired; n > 0 && len(r.running) > 0; n-- {
		r.drain(r.victim())
	}
}

func (r *run) start() {
	r.pending++
	r.helpers.Go(func() {
		ctx, cancel := context.WithTimeout(r.hctx, r.cfg.StartTimeout)
		defer cancel()
		inst, err := r.cfg.Provider.Start(ctx)
		r.send(event{kind: evStarted, inst: inst, err: err})
	})
}

// victim picks the running instance scale-in removes.
func (r *run) victim() *instance {
	all := make([]*instance, 0, len(r.running))
	for _, in := range r.running {
		all = append(all, in)
	}
	load := map[string]int64{}
	for _, m := range r.lastObs.Members {
		load[m.ID] = m.InFlight
	}
	return slices.MinFunc(all, func(a, b *instance) int {
		if r.cfg.Victim == VictimLeastLoaded {
			if c := cmp.Compare(load[a.ID], load[b.ID]); c != 0 {
				return c
			}
		}
		if c := b.started.Compare(a.started); c != 0 { // newest first
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
}

// drain moves in to draining and, in a helper, drains and stops it.
func (r *run) drain(in *instance) {
	delete(r.running, in.ID)
	r.draining[in.ID] = in
	r.s.log.Info("autoscale: draining", "id", in.ID, "url", in.URL)
	r.helpers.Go(func() {
		var derr error
		if r.cfg.Drainer != nil {
			derr = r.cfg.Drainer.Drain(r.hctx, in.ID)
		}
		serr := r.stop(in.ID)
		r.send(event{kind: evDrained, id: in.ID, err: derr, stopErr: serr})
	})
}

// stop stops id with a fresh deadline, so it also works during shutdown.
func (r *run) stop(id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.hctx), r.cfg.StopTimeout)
	defer cancel()
	return r.cfg.Provider.Stop(ctx, id)
}

// send reports ev to the loop, or drops it once the loop has stopped
// reading (shutdown then deals with what is left).
func (r *run) send(ev event) {
	select {
	case r.events <- ev:
	case <-r.done:
	}
}

// watch reports in's exit to the loop.
func (r *run) watch(in *instance) {
	if in.Exited == nil {
		return
	}
	r.helpers.Go(func() {
		select {
		case <-in.Exited:
			r.send(event{kind: evExited, id: in.ID})
		case <-r.done:
		}
	})
}

func (r *run) handle(ev event) {
	switch ev.kind {
	case evStarted:
		r.pending--
		if ev.err == nil && (ev.inst.ID == "" || r.running[ev.inst.ID] != nil || r.draining[ev.inst.ID] != nil) {
			ev.err = fmt.Errorf("provider returned instance id %q, empty or already in use", ev.inst.ID)
		}
		if ev.err != nil {
			r.failed(CodeStartFailed)
			r.s.log.Warn("autoscale: start failed", "err", ev.err, "retry_in", time.Until(r.blockedUntil).Round(time.Millisecond))
			break
		}
		in := &instance{Instance: ev.inst, started: time.Now()}
		r.running[in.ID] = in
		r.s.log.Info("autoscale: started", "id", in.ID, "url", in.URL)
		r.watch(in)
	case evExited:
		in, ok := r.running[ev.id]
		if !ok {
			break // a drained instance ending, as asked
		}
		delete(r.running, ev.id)
		r.unasked(in, CodeReplaced)
		r.s.log.Warn("autoscale: instance exited unasked; replacing", "id", ev.id, "uptime", time.Since(in.started).Round(time.Millisecond))
		r.addEvent(Event{Time: time.Now(), From: r.current() + 1, To: r.desired, Code: CodeReplaced, Reason: "instance " + ev.id + " exited"})
		r.helpers.Go(func() { r.stop(ev.id) }) // the Provider forgets it; it has ended
	case evDrained:
		delete(r.draining, ev.id)
		if ev.err != nil {
			r.s.log.Warn("autoscale: drain incomplete", "id", ev.id, "err", ev.err)
		}
		if ev.stopErr != nil {
			r.s.log.Warn("autoscale: stop failed", "id", ev.id, "err", ev.stopErr)
		} else {
			r.s.log.Info("autoscale: stopped", "id", ev.id)
		}
	}
	r.reconcile()
	r.publish(nil)
}

// unasked counts an instance that ended without being asked. One that
// ended young is a failure and backs off the next start; one that ran a
// while is replaced at once.
func (r *run) unasked(in *instance, code Code) {
	if time.Since(in.started) < crashLoopAge {
		r.failed(code)
		return
	}
	r.failures = 0
	r.count(code)
}

// failed counts a failure and sets the start backoff.
func (r *run) failed(code Code) {
	r.count(code)
	r.failures++
	r.lastFailure = time.Now()
	r.blockedUntil = r.lastFailure.Add(min(time.Second<<min(r.failures-1, 16), maxBackoff))
}

// shutdown stops taking decisions, lets helpers finish (starts abort,
// drains end early), then stops every instance left, all at once.
func (r *run) shutdown(cancel context.CancelFunc) {
	cancel()
	for r.pending > 0 || len(r.draining) > 0 {
		ev := <-r.events
		switch ev.kind {
		case evStarted:
			r.pending--
			if ev.err == nil {
				r.running[ev.inst.ID] = &instance{Instance: ev.inst}
			}
		case evDrained:
			delete(r.draining, ev.id)
		}
	}
	close(r.done)
	var wg sync.WaitGroup
	for id := range r.running {
		wg.Go(func() {
			if err := r.stop(id); err != nil {
				r.s.log.Warn("autoscale: stop failed", "id", id, "err", err)
			}
		})
	}
	wg.Wait()
	r.helpers.Wait()
	clear(r.running)
	r.desired = 0
	r.publish(nil)
	r.s.log.Info("autoscale: stopped all instances")
}
