package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// run sends the load. Workers, each owning its connections, claim request
// numbers from one shared counter until the run's bounds are reached.
func (g *Generator) run(ctx context.Context) (*Result, error) {
	cfg := &g.cfg
	st := &runState{
		g: g,
		// Open-loop latency counts from the scheduled start, so a request
		// that starts late can take up to Duration more than Timeout.
		rec:   newRecorder(cfg.Duration + cfg.Timeout + time.Second),
		begin: make(chan struct{}),
	}
	initial := cfg.Connections
	if cfg.Rate > 0 {
		initial = min(cfg.Connections, max(minOpenWorkers, int(cfg.Rate/200)))
	}
	// The first workers connect before the clock starts, so that opening
	// connections is not mistaken for server latency.
	var ready sync.WaitGroup
	ready.Add(initial)
	st.workers.Store(int64(initial))
	for id := range initial {
		st.wg.Go(func() { st.work(ctx, id, &ready) })
	}
	ready.Wait()
	st.start = time.Now()
	close(st.begin)

	done := make(chan struct{})
	go func() { st.wg.Wait(); close(done) }()
	g.reportProgress(st.start, st.rec, done)

	var t totals
	st.rec.merge(&t)
	res := t.result(cfg)
	res.Connections = int(st.workers.Load())
	return res, ctx.Err()
}

// minOpenWorkers is the fewest workers an open-loop run starts with. It
// starts with enough for requests taking 5ms (Rate/200) and grows on demand.
const minOpenWorkers = 16

// growInterval spaces the open-loop workers added on demand, so a
// generator starved of CPU (where more workers would not help) adds them
// slowly.
const growInterval = time.Millisecond

// runState is what the workers of one run share.
type runState struct {
	g        *Generator
	rec      *recorder
	next     atomic.Int64 // the next request number to claim
	workers  atomic.Int64 // workers started so far
	inFlight atomic.Int64 // requests sent and not yet answered
	lastGrow atomic.Int64 // when the last worker was added, in Unix ns
	wg       sync.WaitGroup
	start    time.Time     // written before begin is closed, read-only after
	begin    chan struct{} // closed when the clock starts
}

// grow adds a worker when an open-loop request started late because every
// other worker was waiting for an answer, unless the cap
// (Config.Connections) is reached or a worker was added less than
// growInterval ago. When requests start late while workers are free, the
// generator lacks CPU, not connections: adding workers would only add
// overhead, so it does not.
func (st *runState) grow(ctx context.Context, now time.Time) {
	if st.inFlight.Load() < st.workers.Load()-1 {
		return
	}
	last := st.lastGrow.Load()
	if now.UnixNano()-last < int64(growInterval) || !st.lastGrow.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	n := st.workers.Add(1)
	if n > int64(st.g.cfg.Connections) {
		st.workers.Add(-1)
		return
	}
	st.wg.Go(func() { st.work(ctx, int(n-1), nil) })
}

// reportProgress calls Config.Progress every ProgressInterval until done is
// closed.
func (g *Generator) reportProgress(start time.Time, rec *recorder, done <-chan struct{}) {
	if g.cfg.Progress == nil {
		<-done
		return
	}
	tick := time.NewTicker(g.cfg.ProgressInterval)
	defer tick.Stop()
	var (
		t        totals
		lastN    int64
		lastTime = start
	)
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			rec.merge(&t)
			p := Progress{
				Elapsed:  now.Sub(start),
				Requests: t.requests,
				Errors:   t.errors,
				Rate:     float64(t.requests-lastN) / now.Sub(lastTime).Seconds(),
				Late:     t.late,
				MaxLag:   t.maxLag,
			}
			p.Remaining = g.remaining(p)
			if t.hist.TotalCount() > 0 {
				p.P50 = time.Duration(t.hist.ValueAtQuantile(50)) * time.Microsecond
				p.P99 = time.Duration(t.hist.ValueAtQuantile(99)) * time.Microsecond
			}
			lastN, lastTime = t.requests, now
			g.cfg.Progress(p)
		}
	}
}

// remaining estimates the time left: until Duration ends the run, or
// sooner when Requests will be reached first at the offered rate (open
// loop) or the current rate (closed loop).
func (g *Generator) remaining(p Progress) time.Duration {
	left := max(g.cfg.Duration-p.Elapsed, 0)
	if g.cfg.Requests == 0 {
		return left
	}
	rate := g.cfg.Rate
	if rate == 0 {
		rate = p.Rate
	}
	if rate > 0 {
		byCount := time.Duration(float64(max(g.cfg.Requests-p.Requests, 0)) / rate * float64(time.Second))
		left = min(left, byCount)
	}
	return left
}

// work is one worker's loop. In open loop, request i is due at
// start + i/Rate: the worker that claims it waits for that moment, or sends
// at once if it is already past, and the request's latency counts from the
// due time, never from when it was actually sent (no coordinated
// omission). In closed loop the worker sends as soon as its previous answer
// is in.
func (st *runState) work(ctx context.Context, id int, ready *sync.WaitGroup) {
	g, cfg := st.g, &st.g.cfg
	conns := make([]*conn, len(g.endpoints))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	if ready != nil {
		for i, ep := range g.endpoints {
			conns[i], _ = dial(ctx, ep, cfg.Timeout, cfg.TLS) // a failure shows on first use
		}
		ready.Done()
		<-st.begin
	}
	start := st.start
	end := start.Add(cfg.Duration)
	var interval float64 // ns between open-loop arrivals
	if cfg.Rate > 0 {
		interval = float64(time.Second) / cfg.Rate
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for ctx.Err() == nil {
		i := st.next.Add(1) - 1
		if cfg.Requests > 0 && i >= cfg.Requests {
			return
		}
		var due, now time.Time
		if interval > 0 {
			due = start.Add(time.Duration(float64(i) * interval))
			if !due.Before(end) {
				return
			}
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			now = time.Now()
			if now.Sub(due) > lateThreshold {
				st.grow(ctx, now)
			}
		} else {
			now = time.Now()
			if !now.Before(end) {
				return
			}
			due = now
		}
		st.inFlight.Add(1)
		s := g.do(ctx, conns, &g.requests[i%int64(len(g.requests))], now)
		finished := time.Now()
		st.inFlight.Add(-1)
		s.latency = finished.Sub(due)
		s.lag = now.Sub(due)
		s.done = finished.Sub(start)
		st.rec.record(id, s)
	}
}

// do sends req on the worker's connection to its endpoint, opening one if
// needed, and returns the outcome. A request on a reused keep-alive
// connection that fails before any byte of answer came back is retried once
// on a new connection: the server may have closed the idle connection just
// as we wrote (RFC 9112 section 9.3.1 allows that retry for requests never
// processed).
func (g *Generator) do(ctx context.Context, conns []*conn, req *request, sent time.Time) sample {
	c := conns[req.endpoint]
	reused := c != nil
	for {
		if c == nil {
			var err error
			c, err = dial(ctx, g.endpoints[req.endpoint], g.cfg.Timeout, g.cfg.TLS)
			if err != nil {
				kind := kindConnect
				if isTimeout(err) {
					kind = kindTimeout
				}
				g.log.Debug("connect failed", "addr", g.endpoints[req.endpoint].addr, "err", err)
				return sample{kind: kind, timed: kind == kindTimeout}
			}
		}
		resp, err := c.roundTrip(req.wire, req.head, sent, g.cfg.Timeout)
		if err != nil {
			c.close()
			c, conns[req.endpoint] = nil, nil
			if reused && resp.bytes == 0 && !isTimeout(err) && ctx.Err() == nil {
				reused = false
				continue
			}
			kind := kindOf(err)
			g.log.Debug("request failed", "addr", g.endpoints[req.endpoint].addr, "err", err)
			return sample{kind: kind, bytes: resp.bytes, timed: kind == kindTimeout}
		}
		if resp.close || g.cfg.DisableKeepAlive {
			c.close()
			c = nil
		}
		conns[req.endpoint] = c
		s := sample{status: resp.status, bytes: resp.bytes, kind: kindNone, timed: true}
		switch {
		case resp.status >= 500:
			s.kind = kind5xx
		case resp.status >= 400:
			s.kind = kind4xx
		}
		return s
	}
}
