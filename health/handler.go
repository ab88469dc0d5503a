package health

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HeartbeatPath is where balancers take heartbeats on their admin
// listener, and where a Sender posts them.
const HeartbeatPath = "/api/heartbeat"

// Handler returns the http.Handler for POST /api/heartbeat. It answers:
//
//	200 {"lease_ms": N}   accepted (N is 0 for "leaving"; {"stale": true} for an old seq)
//	400                   malformed JSON, unknown field, or a value out of range
//	401                   missing or wrong bearer token (checked before the body is read)
//	405                   a method other than POST
//	413                   a body larger than MaxBodyBytes
//	415                   a Content-Type other than application/json
//	422                   the pool refused the member
//
// Every error body is {"error": "..."} naming what is wrong; a refused
// heartbeat changes nothing. The handler ignores the request path, so it
// can be mounted at HeartbeatPath on any mux.
func (r *Registry) Handler() http.Handler { return http.HandlerFunc(r.serveHTTP) }

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (r *Registry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		r.refuse(w, reasonMethod, http.StatusMethodNotAllowed, errors.New("heartbeats are POSTed"))
		return
	}
	if !r.authorized(req.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scaleout heartbeat"`)
		r.refuse(w, reasonAuth, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			r.refuse(w, reasonContentType, http.StatusUnsupportedMediaType, fmt.Errorf("content type %.60q: want application/json", ct))
			return
		}
	}
	limit := r.cfg.MaxBodyBytes
	if req.ContentLength > limit {
		r.refuse(w, reasonTooLarge, http.StatusRequestEntityTooLarge, fmt.Errorf("body of %d bytes: limit is %d", req.ContentLength, limit))
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 4<<10 {
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, req.Body, limit)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			r.refuse(w, reasonTooLarge, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", limit))
			return
		}
		r.refuse(w, reasonMalformedN, http.StatusBadRequest, fmt.Errorf("reading body: %w", err))
		return
	}
	h, reason, err := decodeHeartbeat(buf.Bytes(), r.cfg.MinInterval, r.cfg.MaxInterval)
	if err != nil {
		n := reasonMalformedN
		if reason == reasonInvalid {
			n = reasonInvalidN
		}
		r.refuse(w, n, http.StatusBadRequest, err)
		return
	}
	res, err := r.apply(&h, time.Now())
	if err != nil {
		writeJSONError(w, http.StatusUnprocessableEntity, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	out := buf.AvailableBuffer()[:0]
	if res.stale {
		out = append(out, `{"stale":true}`...)
	} else {
		out = strconv.AppendInt(append(out, `{"lease_ms":`...), res.lease.Milliseconds(), 10)
		out = append(out, "}\n"...)
	}
	w.Write(out)
}

func (r *Registry) refuse(w http.ResponseWriter, reason, status int, err error) {
	r.counters.rejected[reason].Add(1)
	writeJSONError(w, status, err)
}

// writeJSONError writes {"error": msg}. The message is quoted by strconv,
// whose escapes are valid JSON for the ASCII-safe text written here.
func writeJSONError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, `{"error":`+strconv.QuoteToASCII(err.Error())+"}\n")
}

// WriteMetrics writes the registry's figures in the Prometheus text format,
// with names starting scaleout_heartbeat_.
func (r *Registry) WriteMetrics(w io.Writer) {
	s := r.Stats()
	var b strings.Builder
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	counter("scaleout_heartbeats_total", "Heartbeats accepted.", s.Heartbeats)
	counter("scaleout_heartbeat_registrations_total", "Members registered by a heartbeat.", s.Registrations)
	counter("scaleout_heartbeat_leaves_total", "Members removed by a leaving heartbeat.", s.Leaves)
	counter("scaleout_heartbeat_lease_expiries_total", "Members set down because their lease ran out.", s.Expiries)
	counter("scaleout_heartbeat_removals_total", "Silent members forgotten after the grace.", s.Removals)
	counter("scaleout_heartbeat_recoveries_total", "Down members brought back by a heartbeat.", s.Recoveries)
	counter("scaleout_heartbeat_stale_total", "Heartbeats ignored for an old sequence number.", s.Stale)
	b.WriteString("# HELP scaleout_heartbeat_rejected_total Heartbeats refused, by reason.\n# TYPE scaleout_heartbeat_rejected_total counter\n")
	for _, name := range reasonNames {
		fmt.Fprintf(&b, "scaleout_heartbeat_rejected_total{reason=%q} %d\n", name, s.Rejected[name])
	}
	b.WriteString("# HELP scaleout_heartbeat_members Members holding a lease, by state.\n# TYPE scaleout_heartbeat_members gauge\n")
	states := []MemberState{StateReady, StateDraining, StateDown}
	for _, st := range states {
		fmt.Fprintf(&b, "scaleout_heartbeat_members{state=%q} %d\n", st, s.Members[st])
	}
	io.WriteString(w, b.String())
}
