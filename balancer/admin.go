package balancer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MemberStats is a snapshot of one pool member, as /api/backends shows it.
type MemberStats struct {
	ID       string  `json:"id"`
	URL      string  `json:"url"`
	State    string  `json:"state"`
	Ejected  bool    `json:"ejected"`
	Weight   int     `json:"weight"`
	InFlight int64   `json:"in_flight"`
	Requests uint64  `json:"requests"`
	Failures uint64  `json:"failures"`
	EWMAms   float64 `json:"ewma_ms"`
	// Healthy is false while active health checks fail; LeaseExpired is
	// true while the member's heartbeats have stopped.
	Healthy      bool `json:"healthy"`
	LeaseExpired bool `json:"lease_expired"`
	// Dynamic members joined by heartbeat or the admin API.
	Dynamic bool `json:"dynamic"`
	// ReportedInFlight and Capacity are what the member's heartbeat said.
	ReportedInFlight int64 `json:"reported_in_flight"`
	Capacity         int64 `json:"capacity"`
}

// Stats is a snapshot of the balancer's figures, read by the admin API,
// the dashboard and the autoscaler.
type Stats struct {
	Members     []MemberStats `json:"members"`
	Requests    uint64        `json:"requests"`
	Retries     uint64        `json:"retries"`
	RetryDenied uint64        `json:"retry_denied"`
	NoBackend   uint64        `json:"no_backend"`
	QueueFull   uint64        `json:"queue_full"`
	BadRequests uint64        `json:"bad_requests"`
	UpstreamErr uint64        `json:"upstream_errors"`
	Ejections   uint64        `json:"ejections"`
	GuardActive bool          `json:"guard_active"`
	ActiveConns int64         `json:"active_conns"`
	InFlight    int64         `json:"in_flight"`
	// Queued is the requests waiting now for a member's concurrency slot.
	Queued int64 `json:"queued"`
}

// Stats returns a snapshot of the pool and the balancer's counters.
func (b *Balancer) Stats() Stats {
	now := nanotime()
	s := Stats{
		Requests:    b.counter.requests.Load(),
		Retries:     b.counter.retries.Load(),
		RetryDenied: b.counter.retryDenied.Load(),
		NoBackend:   b.counter.noBackend.Load(),
		QueueFull:   b.counter.queueFull.Load(),
		BadRequests: b.counter.badRequests.Load(),
		UpstreamErr: b.counter.upstreamErrs.Load(),
		Ejections:   b.counter.ejections.Load(),
		GuardActive: b.counter.guardActive.Load() != 0,
		ActiveConns: b.counter.activeConns.Load(),
	}
	for _, m := range b.snap.Load().all {
		ms := MemberStats{
			ID: m.ID, URL: m.URL.String(), State: m.State().String(),
			Ejected: m.ejectedUntil.Load() > now, Weight: m.Weight,
			InFlight: m.InFlight(), Requests: m.Requests(), Failures: m.Failures(),
			EWMAms: m.decayedEWMA(now) / 1e6, Healthy: !m.probeDown.Load(), LeaseExpired: m.leaseDown.Load(),
			Dynamic: m.dynamic.Load(), ReportedInFlight: m.reportedInFlight.Load(), Capacity: m.capacity.Load(),
		}
		s.InFlight += ms.InFlight
		s.Queued += int64(m.queued.Load())
		s.Members = append(s.Members, ms)
	}
	return s
}

// AdminHandler serves the admin API:
//
//	GET    /api/backends            the pool, as JSON
//	POST   /api/backends            add a member: {"id": ..., "url": ..., "weight": ...}
//	DELETE /api/backends/{id}       remove a member
//	POST   /api/backends/{id}/drain stop new work for a member
//	POST   /api/backends/{id}/ready put a member back in rotation
//	GET    /api/stats               Stats, as JSON
//	GET    /metrics                 Prometheus text format
func (b *Balancer) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/backends", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Stats().Members)
	})
	mux.HandleFunc("POST /api/backends", b.handleAdd)
	mux.HandleFunc("DELETE /api/backends/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := b.Remove(r.PathValue("id")); err != nil {
			writeError(w, http.StatusNotFound, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /api/backends/{id}/drain", b.stateHandler(Draining))
	mux.HandleFunc("POST /api/backends/{id}/ready", b.stateHandler(Ready))
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Stats())
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		b.WriteMetrics(w)
	})
	return mux
}

func (b *Balancer) stateHandler(s State) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := b.SetState(r.PathValue("id"), s); err != nil {
			writeError(w, http.StatusNotFound, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (b *Balancer) handleAdd(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID     string `json:"id"`
		URL    string `json:"url"`
		Weight int    `json:"weight"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("bad member JSON: %w", err))
		return
	}
	if req.Weight < 0 {
		writeError(w, http.StatusBadRequest, errors.New("weight must not be negative"))
		return
	}
	m, err := NewBackend(req.ID, req.URL, req.Weight)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	m.dynamic.Store(true)
	if err := b.Add(m); err != nil {
		writeError(w, http.StatusConflict, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": m.ID, "url": m.URL.String()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// WriteMetrics writes the balancer's figures in the Prometheus text format.
func (b *Balancer) WriteMetrics(w io.Writer) {
	var sb strings.Builder
	s := b.Stats()
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(&sb, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	counter("scaleout_requests_total", "Client requests received.", s.Requests)
	counter("scaleout_retries_total", "Attempts retried on another member.", s.Retries)
	counter("scaleout_retries_denied_total", "Retries refused by the retry budget.", s.RetryDenied)
	counter("scaleout_no_backend_total", "Requests answered 503 for want of a member.", s.NoBackend)
	counter("scaleout_queue_full_total", "Requests answered 503 by a member's full queue.", s.QueueFull)
	counter("scaleout_queued_total", "Requests that waited for a member's concurrency slot.", b.counter.queued.Load())
	fmt.Fprintf(&sb, "# HELP scaleout_queue_wait_seconds_total Time spent waiting for member slots.\n# TYPE scaleout_queue_wait_seconds_total counter\nscaleout_queue_wait_seconds_total %g\n", float64(b.counter.queueWaitNs.Load())/1e9)
	counter("scaleout_bad_requests_total", "Malformed or oversized requests refused.", s.BadRequests)
	counter("scaleout_upstream_errors_total", "Requests answered 502 or 504.", s.UpstreamErr)
	counter("scaleout_ejections_total", "Members ejected by passive health.", s.Ejections)
	fmt.Fprintf(&sb, "# HELP scaleout_health_guard_active Whether the guard keeps ejected members in rotation.\n# TYPE scaleout_health_guard_active gauge\nscaleout_health_guard_active %d\n", b.counter.guardActive.Load())
	fmt.Fprintf(&sb, "# HELP scaleout_client_connections Open client connections.\n# TYPE scaleout_client_connections gauge\nscaleout_client_connections %d\n", s.ActiveConns)
	sb.WriteString("# HELP scaleout_member_in_flight Requests a member is serving.\n# TYPE scaleout_member_in_flight gauge\n")
	for _, m := range s.Members {
		fmt.Fprintf(&sb, "scaleout_member_in_flight{member=%q} %d\n", m.ID, m.InFlight)
	}
	sb.WriteString("# HELP scaleout_member_up Whether a member is in rotation (ready and not ejected).\n# TYPE scaleout_member_up gauge\n")
	for _, m := range s.Members {
		up := 0
		if m.State == "ready" && !m.Ejected && m.Healthy && !m.LeaseExpired {
			up = 1
		}
		fmt.Fprintf(&sb, "scaleout_member_up{member=%q,state=%q} %d\n", m.ID, m.State, up)
	}
	sb.WriteString("# HELP scaleout_member_failures_total Failed attempts per member.\n# TYPE scaleout_member_failures_total counter\n")
	for _, m := range s.Members {
		fmt.Fprintf(&sb, "scaleout_member_failures_total{member=%q} %d\n", m.ID, m.Failures)
	}
	b.writeLatency(&sb)
	io.WriteString(w, sb.String())
}

var classNames = [numClasses]string{"error", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (b *Balancer) writeLatency(sb *strings.Builder) {
	sb.WriteString("# HELP scaleout_request_duration_seconds Request latency per member and status class.\n# TYPE scaleout_request_duration_seconds histogram\n")
	for _, m := range b.snap.Load().all {
		for c := range numClasses {
			h := &m.stats.byClass[c]
			n := h.n.Load()
			if n == 0 {
				continue
			}
			var cum uint64
			for i, ub := range latencyBuckets {
				cum += h.counts[i].Load()
				fmt.Fprintf(sb, "scaleout_request_duration_seconds_bucket{member=%q,class=%q,le=%q} %d\n", m.ID, classNames[c], strconv.FormatFloat(ub.Seconds(), 'g', -1, 64), cum)
			}
			fmt.Fprintf(sb, "scaleout_request_duration_seconds_bucket{member=%q,class=%q,le=\"+Inf\"} %d\n", m.ID, classNames[c], n)
			fmt.Fprintf(sb, "scaleout_request_duration_seconds_sum{member=%q,class=%q} %g\n", m.ID, classNames[c], float64(h.sumNs.Load())/1e9)
			fmt.Fprintf(sb, "scaleout_request_duration_seconds_count{member=%q,class=%q} %d\n", m.ID, classNames[c], n)
		}
	}
}

// LatencyHistogram returns the latency histogram's bucket upper bounds and
// the pool-wide count of answered requests per bucket since the balancer
// started (the last count has no bound), summed over the current members.
// Two calls a while apart give the latency distribution between them.
func (b *Balancer) LatencyHistogram() (bounds []time.Duration, counts []uint64) {
	bounds = latencyBuckets[:]
	counts = make([]uint64, len(latencyBuckets)+1)
	for _, m := range b.snap.Load().all {
		for c := 1; c < numClasses; c++ {
			h := &m.stats.byClass[c]
			for i := range counts {
				counts[i] += h.counts[i].Load()
			}
		}
	}
	return bounds, counts
}
