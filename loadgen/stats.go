package loadgen

import (
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Kinds of error, the keys of Result.ErrorsByKind.
const (
	KindConnect  = "connect"  // the connection could not be opened
	KindTimeout  = "timeout"  // no complete answer within Config.Timeout
	KindWrite    = "write"    // the request could not be written
	KindRead     = "read"     // the connection failed or closed mid-response
	KindProtocol = "protocol" // the answer was not valid HTTP/1.x
	KindHTTP4xx  = "http_4xx" // a complete answer with a 4xx status
	KindHTTP5xx  = "http_5xx" // a complete answer with a 5xx status
)

var kinds = [...]string{KindConnect, KindTimeout, KindWrite, KindRead, KindProtocol, KindHTTP4xx, KindHTTP5xx}

const (
	kindConnect = iota
	kindTimeout
	kindWrite
	kindRead
	kindProtocol
	kind4xx
	kind5xx
	numKinds
	kindNone = -1
)

// opError is a transport error tagged with its kind.
type opError struct {
	kind string
	err  error
}

func (e *opError) Error() string { return e.kind + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// kindOf classifies a transport error; a deadline always counts as timeout.
func kindOf(err error) int {
	if isTimeout(err) {
		return kindTimeout
	}
	var oe *opError
	if errors.As(err, &oe) {
		for i, k := range kinds {
			if k == oe.kind {
				return i
			}
		}
	}
	return kindRead
}

// lateThreshold is how far behind its schedule an open-loop request may
// start before it counts as started late. Timer wake-ups on a busy machine
// are routinely 1-2ms late; 5ms separates that jitter from a generator that
// has fallen behind (all connections busy, or not enough CPU).
const lateThreshold = 5 * time.Millisecond

// numShards is the number of independently locked recording shards. Workers
// are spread over them so recording is almost never contended, while a
// progress snapshot merges only a few histograms.
const numShards = 8

// sample is the outcome of one request.
type sample struct {
	latency time.Duration // from scheduled (open) or actual (closed) start to completion
	lag     time.Duration // open loop: actual start minus scheduled start
	done    time.Duration // completion, since the run's start
	status  int           // 0 when no response
	kind    int           // kindNone, or the error kind
	bytes   int64
	timed   bool // latency is meaningful (a response, or a timeout)
}

// shard is one lock's worth of recorded figures.
type shard struct {
	// mu guards every field below.
	mu       sync.Mutex
	hist     *hdrhistogram.Histogram // latency in microseconds
	status   [600]int64              // count by status code; [0] holds codes out of range
	kinds    [numKinds]int64
	requests int64
	errors   int64
	bytes    int64
	late     int64
	maxLag   time.Duration
	lastDone time.Duration
	_        [64]byte // keep shards on separate cache lines
}

// recorder collects samples from all workers.
type recorder struct {
	maxMicros int64
	shards    [numShards]shard
}

func newRecorder(maxLatency time.Duration) *recorder {
	r := &recorder{maxMicros: max(maxLatency.Microseconds(), 1000)}
	for i := range r.shards {
		r.shards[i].hist = newHist(r.maxMicros)
	}
	return r
}

// newHist returns a histogram from 1µs to maxMicros with 3 significant
// digits: every recorded value is reported within 0.1% of its true value.
func newHist(maxMicros int64) *hdrhistogram.Histogram {
	return hdrhistogram.New(1, maxMicros, 3)
}

func (r *recorder) record(worker int, s sample) {
	sh := &r.shards[worker%numShards]
	sh.mu.Lock()
	sh.requests++
	sh.bytes += s.bytes
	if s.timed {
		us := min(max(s.latency.Microseconds(), 1), r.maxMicros)
		_ = sh.hist.RecordValue(us) // cannot fail: us is within range
	}
	if s.status > 0 {
		if s.status < len(sh.status) {
			sh.status[s.status]++
		} else {
			sh.status[0]++
		}
	}
	if s.kind != kindNone {
		sh.errors++
		sh.kinds[s.kind]++
	}
	if s.lag > lateThreshold {
		sh.late++
	}
	sh.maxLag = max(sh.maxLag, s.lag)
	sh.lastDone = max(sh.lastDone, s.done)
	sh.mu.Unlock()
}

// totals is a merged view of every shard.
type totals struct {
	hist                          *hdrhistogram.Histogram
	status                        [600]int64
	kinds                         [numKinds]int64
	requests, errors, bytes, late int64
	maxLag, lastDone              time.Duration
}

// merge folds every shard into into, which is reset first.
func (r *recorder) merge(into *totals) {
	h := into.hist
	if h == nil {
		h = newHist(r.maxMicros)
	}
	h.Reset()
	*into = totals{hist: h}
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		h.Merge(sh.hist)
		for c, n := range sh.status {
			into.status[c] += n
		}
		for k, n := range sh.kinds {
			into.kinds[k] += n
		}
		into.requests += sh.requests
		into.errors += sh.errors
		into.bytes += sh.bytes
		into.late += sh.late
		into.maxLag = max(into.maxLag, sh.maxLag)
		into.lastDone = max(into.lastDone, sh.lastDone)
		sh.mu.Unlock()
	}
}

// Progress is a snapshot of a run in progress, passed to Config.Progress.
type Progress struct {
	Elapsed   time.Duration // since the first request was scheduled
	Remaining time.Duration // until Config.Duration ends the run
	Requests  int64         // completed, with or without error
	Errors    int64
	Rate      float64       // completions per second since the previous Progress
	P50, P99  time.Duration // latency percentiles of the whole run so far
	Late      int64         // open loop: requests started late so far
	MaxLag    time.Duration // open loop: the furthest behind schedule a request started
}

// Result is the measurement of one run. Its JSON form is what
// `scaleout bench --json` prints.
type Result struct {
	// Mode is "open" (constant arrival rate) or "closed".
	Mode string `json:"mode"`
	// Requests counts completed requests, answered or failed.
	Requests int64 `json:"requests"`
	// Errors counts failed requests: transport errors and 4xx/5xx answers.
	Errors int64 `json:"errors"`
	// ErrorsByKind counts errors by kind (the Kind constants).
	ErrorsByKind map[string]int64 `json:"errors_by_kind"`
	// StatusCodes counts answers by status code ("200", "503").
	StatusCodes map[string]int64 `json:"status_codes"`
	// OfferedRPS is the open-loop arrival rate asked for; 0 in closed loop.
	OfferedRPS float64 `json:"offered_rps,omitempty"`
	// AchievedRPS is Requests divided by Seconds.
	AchievedRPS float64 `json:"achieved_rps"`
	// Seconds is the time from the start to the last completion; in open
	// loop, at least the span of the schedule (Requests/OfferedRPS).
	Seconds float64 `json:"seconds"`
	// Connections is the number of workers, each with its connection:
	// Config.Connections in closed loop, as many as the run grew to in
	// open loop.
	Connections int `json:"connections"`
	// Bytes counts response bytes read, heads and bodies.
	Bytes int64 `json:"bytes"`
	// Latency summarizes the latency of answered and timed-out requests.
	Latency Latency `json:"latency_ms"`
	// Histogram is the latency distribution in log-spaced buckets.
	Histogram []Bucket `json:"histogram"`
	// StartedLate counts open-loop requests that started more than 5ms
	// after their scheduled time: the generator fell behind (all
	// connections busy or CPU starved). Their latency still counts from
	// the scheduled time.
	StartedLate int64 `json:"started_late"`
	// MaxLagMS is the furthest behind schedule, in ms, that an open-loop
	// request started.
	MaxLagMS float64 `json:"max_lag_ms"`
}

// Latency is a latency summary in milliseconds, read from an HDR histogram
// with 3 significant digits.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// Bucket is one bar of the latency histogram: Count requests took more than
// the previous bucket's UpToMS and at most UpToMS.
type Bucket struct {
	UpToMS float64 `json:"up_to_ms"`
	Count  int64   `json:"count"`
}

// result turns merged totals into a Result.
func (t *totals) result(cfg *Config) *Result {
	res := &Result{
		Mode:         "closed",
		Requests:     t.requests,
		Errors:       t.errors,
		ErrorsByKind: map[string]int64{},
		StatusCodes:  map[string]int64{},
		Connections:  cfg.Connections,
		Bytes:        t.bytes,
		StartedLate:  t.late,
		MaxLagMS:     ms(t.maxLag.Microseconds()),
		Seconds:      t.lastDone.Seconds(),
	}
	if cfg.Rate > 0 {
		res.Mode, res.OfferedRPS = "open", cfg.Rate
	}
	if cfg.Rate > 0 {
		// Open loop: n requests span n/Rate seconds of schedule, even when
		// the last one is answered sooner than the next would have been due.
		res.Seconds = max(res.Seconds, float64(t.requests)/cfg.Rate)
	}
	if res.Seconds > 0 {
		res.AchievedRPS = float64(t.requests) / res.Seconds
	}
	for k, n := range t.kinds {
		if n > 0 {
			res.ErrorsByKind[kinds[k]] = n
		}
	}
	for c, n := range t.status {
		if n > 0 {
			key := strconv.Itoa(c)
			if c == 0 {
				key = "other"
			}
			res.StatusCodes[key] = n
		}
	}
	h := t.hist
	if h.TotalCount() > 0 {
		res.Latency = Latency{
			Min: ms(h.Min()), Mean: h.Mean() / 1000, Max: ms(h.Max()),
			P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
			P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)),
		}
		res.Histogram = buckets(h)
	}
	return res
}

func ms(micros int64) float64 { return float64(micros) / 1000 }

// buckets spreads the histogram over about a dozen log-spaced buckets
// between its min and max, each bound a 1-2-5 round number of ms.
func buckets(h *hdrhistogram.Histogram) []Bucket {
	lo, hi := ms(h.Min()), ms(h.Max())
	var bounds []float64
	for b := roundBelow(lo); ; b = nextRound(b) {
		if b >= lo || len(bounds) > 0 {
			bounds = append(bounds, b)
		}
		if b >= hi {
			break
		}
	}
	// Merge adjacent bounds if there are too many: keep at most 16 rows.
	for len(bounds) > 16 {
		kept := bounds[:0]
		for i := len(bounds) % 2; i < len(bounds); i += 2 {
			kept = append(kept, bounds[i])
		}
		if kept[len(kept)-1] < hi {
			kept = append(kept, bounds[len(bounds)-1])
		}
		bounds = kept
	}
	out := make([]Bucket, len(bounds))
	for i, b := range bounds {
		out[i].UpToMS = b
	}
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		v := ms(bar.From)
		i := 0
		for i < len(out)-1 && v > out[i].UpToMS {
			i++
		}
		out[i].Count += bar.Count
	}
	return out
}

// roundBelow returns the largest 1-2-5 number of ms not above v (at least 0.01).
func roundBelow(v float64) float64 {
	b := 0.01
	for nextRound(b) <= v {
		b = nextRound(b)
	}
	return b
}

// nextRound returns the 1-2-5 number after b.
func nextRound(b float64) float64 {
	exp := math.Pow(10, math.Floor(math.Log10(b)+1e-9))
	switch m := math.Round(b / exp); {
	case m < 2:
		return 2 * exp
	case m < 5:
		return 5 * exp
	default:
		return 10 * exp
	}
}
