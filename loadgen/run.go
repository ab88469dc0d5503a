package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// run sends the load: Connections workers, each owning its connections,
// claim request numbers from one shared counter until the run's bounds are
// reached.
func (g *Generator) run(ctx context.Context) (*Result, error) {
	cfg := &g.cfg
	// Open-loop latency counts from the scheduled start, so a request
	// that starts late can take up to Duration more than Timeout.
	rec := newRecorder(cfg.Duration + cfg.Timeout + time.Second)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for id := range cfg.Connections {
		wg.Go(func() { g.work(ctx, id, start, &next, rec) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	g.reportProgress(start, rec, done)

	var t totals
	rec.merge(&t)
	return t.result(cfg), ctx.Err()
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
				Elapsed:   now.Sub(start),
				Remaining: max(g.cfg.Duration-now.Sub(start), 0),
				Requests:  t.requests,
				Errors:    t.errors,
				Rate:      float64(t.requests-lastN) / now.Sub(lastTime).Seconds(),
				Late:      t.late,
				MaxLag:    t.maxLag,
			}
			if t.hist.TotalCount() > 0 {
				p.P50 = time.Duration(t.hist.ValueAtQuantile(50)) * time.Microsecond
				p.P99 = time.Duration(t.hist.ValueAtQuantile(99)) * time.Microsecond
			}
			lastN, lastTime = t.requests, now
			g.cfg.Progress(p)
		}
	}
}

// work is one worker's loop. In open loop, request i is due at
// start + i/Rate: the worker that claims it waits for that moment, or sends
// at once if it is already past, and the request's latency counts from the
// due time, never from when it was actually sent (no coordinated
// omission). In closed loop the worker sends as soon as its previous answer
// is in.
func (g *Generator) work(ctx context.Context, id int, start time.Time, next *atomic.Int64, rec *recorder) {
	cfg := &g.cfg
	conns := make([]*conn, len(g.endpoints))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	end := start.Add(cfg.Duration)
	var interval float64 // ns between open-loop arrivals
	if cfg.Rate > 0 {
		interval = float64(time.Second) / cfg.Rate
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for ctx.Err() == nil {
		i := next.Add(1) - 1
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
		} else {
			now = time.Now()
			if !now.Before(end) {
				return
			}
			due = now
		}
		s := g.do(ctx, conns, &g.requests[i%int64(len(g.requests))], now)
		finished := time.Now()
		s.latency = finished.Sub(due)
		s.lag = now.Sub(due)
		s.done = finished.Sub(start)
		rec.record(id, s)
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
		resp, err := c.roundTrip(req.wire, req.head, sent.Add(g.cfg.Timeout))
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
