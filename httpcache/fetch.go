package httpcache

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// serve builds the response to req from the stored entry e, answering the
// client's own If-None-Match or If-Modified-Since (RFC 9111 section 4.3.2).
// status is the Cache-Status parameter list; "" means a plain hit.
func (s *Shared) serve(req *http.Request, e *entry, now time.Time, status string) *http.Response {
	h, spare := cloneHeader(e.header, 2)
	spare[0] = ageSeconds(e.age(now))
	spare[1] = s.hitStatus
	if status != "" {
		spare[1] = s.name + "; " + status
	}
	h["Age"], h["Cache-Status"] = spare[0:1:1], spare[1:2:2]
	code, body := e.status, e.body
	if code == http.StatusOK && notModified(req.Header, e) {
		code, body = http.StatusNotModified, nil
		for _, f := range [...]string{"Content-Length", "Content-Type", "Content-Encoding", "Content-Range", "Content-Language"} {
			delete(h, f)
		}
	}
	n := int64(len(body))
	if req.Method == http.MethodHead {
		body = nil
	}
	res := newResponse(req, code, h, body)
	if code != http.StatusNotModified {
		res.ContentLength = n
	}
	return res
}

// notModified evaluates a client's If-None-Match, or failing that its
// If-Modified-Since, against a stored response (RFC 9110 section 13.2.2
// steps 3 and 4; weak comparison for If-None-Match).
func notModified(h http.Header, e *entry) bool {
	if inm := h.Values("If-None-Match"); len(inm) > 0 {
		tags, any, _ := ParseETagList(inm)
		if any {
			return true
		}
		et, err := ParseETag(e.etag)
		if err != nil {
			return false
		}
		for _, t := range tags {
			if t.WeakMatch(et) {
				return true
			}
		}
		return false
	}
	ims, ok := ParseHTTPDate(h.Get("If-Modified-Since"))
	if !ok {
		return false
	}
	// Without Last-Modified, the stored Date stands in (RFC 9111 4.3.2).
	lm, ok := ParseHTTPDate(e.lastMod)
	if !ok {
		lm, ok = ParseHTTPDate(e.header.Get("Date"))
	}
	return ok && !lm.After(ims)
}

// fetch forwards req as a miss (or an unconditional refetch) and arranges
// for the response to be stored if it may be. f, if not nil, is the flight
// this request leads; it ends once the response is stored or refused.
func (s *Shared) fetch(req *http.Request, reqCC Directives, f *flight, status string) (*http.Response, error) {
	reqTime := s.now()
	res, err := s.next.RoundTrip(s.outgoing(req, false))
	if err != nil {
		f.end()
		return nil, err
	}
	return s.admit(req, reqCC, res, reqTime, s.now(), f, status), nil
}

// admit decides whether res may be stored (RFC 9111 section 3) and, if so,
// wraps its body so that it is stored once read to the end without
// exceeding MaxEntryBytes. It adds Cache-Status and removes tag fields.
func (s *Shared) admit(req *http.Request, reqCC Directives, res *http.Response, reqTime, respTime time.Time, f *flight, status string) *http.Response {
	cc := directives(res.Header, s.name)
	ok, why := storable(req, reqCC, res, cc)
	if ok && res.ContentLength > s.maxEntry {
		ok, why = false, "too-large"
	}
	var e *entry
	if ok {
		e = s.newEntry(req, res, reqTime, respTime)
		if e.lifetime <= e.initialAge && e.etag == "" && e.lastMod == "" {
			ok, why = false, "stale-no-validator"
		}
	}
	for _, t := range s.tags {
		res.Header.Del(t)
	}
	res.Header.Del("Surrogate-Control")
	if !ok {
		f.end()
		s.addStatus(res.Header, status+"; detail="+why)
		return res
	}
	s.addStatus(res.Header, status+"; stored")
	t := &teeBody{rc: res.Body, s: s, e: e, f: f, want: res.ContentLength}
	if res.ContentLength > 0 {
		t.buf = make([]byte, 0, res.ContentLength)
	}
	res.Body = t
	return res
}

// newEntry builds an entry, without its body, for the response to req.
func (s *Shared) newEntry(req *http.Request, res *http.Response, reqTime, respTime time.Time) *entry {
	e := &entry{
		primary: primaryKey(req),
		status:  res.StatusCode,
		header:  storedHeader(res.Header, s.tags),
		tags:    parseTags(res.Header, s.tags),
		vary:    varyNames(res.Header),
	}
	e.key = e.primary
	if len(e.vary) > 0 {
		e.key = variantKey(e.primary, e.vary, req.Header)
	}
	e.timing(reqTime, respTime, parseAge(res.Header), directives(res.Header, s.name))
	return e
}

// insert stores a complete entry, and the Vary marker its key needs.
func (s *Shared) insert(e *entry) {
	e.wire = wireHead(e)
	e.weigh()
	if len(e.vary) > 0 {
		m := &entry{key: e.primary, primary: e.primary, marker: true, vary: e.vary}
		m.weigh()
		s.idx.add(m)
		s.store.Set(m.key, m)
	}
	s.idx.add(e)
	s.store.Set(e.key, e)
	s.stored.Add(1)
}

// teeBody passes a response body through to the client while keeping a
// copy, up to the entry limit; the copy is stored when the body ends.
// Close may race with Read (a proxy cancelling a request), hence mu.
type teeBody struct {
	rc   io.ReadCloser
	s    *Shared
	e    *entry
	f    *flight
	want int64
	// mu guards buf and done.
	mu   sync.Mutex
	buf  []byte
	done bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return n, err
	}
	if int64(len(t.buf)+n) > t.s.maxEntry {
		t.finish(false)
		return n, err
	}
	t.buf = append(t.buf, p[:n]...)
	if err == io.EOF {
		t.finish(true)
	} else if err != nil {
		t.finish(false)
	}
	return n, err
}

func (t *teeBody) Close() error {
	t.mu.Lock()
	if !t.done {
		t.finish(t.want >= 0 && int64(len(t.buf)) == t.want)
	}
	t.mu.Unlock()
	return t.rc.Close()
}

// finish stores the copy if complete and ends the flight. Called with mu held.
func (t *teeBody) finish(complete bool) {
	t.done = true
	if complete && (t.want < 0 || int64(len(t.buf)) == t.want) {
		t.e.body = t.buf
		t.s.insert(t.e)
	}
	t.buf = nil
	t.f.end()
}

// revalidate sends a conditional request with the stored validators
// (RFC 9111 section 4.3.1) and answers from the updated entry on 304, from
// the stale entry on an error when stale-if-error allows, and otherwise
// with the new response.
func (s *Shared) revalidate(req *http.Request, reqCC Directives, e *entry, waited bool) (*http.Response, error) {
	var f *flight
	if !waited {
		var leader bool
		if f, leader = s.join(e.key); !leader {
			if s.wait(req.Context(), f) {
				return s.roundTrip(req, true)
			}
			f = nil
		} else if cur, ok := s.store.GetIfPresent(e.key); ok && cur != e {
			// Another request revalidated it between our lookup and join.
			f.end()
			return s.roundTrip(req, true)
		}
	}
	out := s.outgoing(req, true)
	if e.etag != "" {
		out.Header.Set("If-None-Match", e.etag)
	}
	if e.lastMod != "" {
		out.Header.Set("If-Modified-Since", e.lastMod)
	}
	reqTime := s.now()
	res, err := s.next.RoundTrip(out)
	now := s.now()
	if err != nil {
		f.end()
		if staleIfError(e, reqCC, now) {
			s.stale.Add(1)
			return s.serve(req, e, now, "fwd=stale; detail=stale-if-error"), nil
		}
		return nil, err
	}
	switch {
	case res.StatusCode == http.StatusNotModified:
		drain(res.Body)
		ne, ok := s.update(e, res, reqTime, now)
		f.end()
		if !ok {
			// The 304 names another representation than the one stored,
			// so it must not update it (RFC 9111 section 4.3.4); the
			// origin did confirm it needs no new body, so the stored one
			// is answered as it is.
			return s.serve(req, e, now, "fwd=stale; fwd-status=304; detail=validator-mismatch"), nil
		}
		s.revals.Add(1)
		return s.serve(req, ne, now, "fwd=stale; fwd-status=304"), nil
	case res.StatusCode >= 500 && staleIfError(e, reqCC, now):
		drain(res.Body)
		f.end()
		s.stale.Add(1)
		return s.serve(req, e, now, "fwd=stale; fwd-status="+strconv.Itoa(res.StatusCode)+"; detail=stale-if-error"), nil
	}
	return s.admit(req, reqCC, res, reqTime, now, f, "fwd=stale"), nil
}

// update freshens e with the fields of a 304 (RFC 9111 sections 3.2 and
// 4.3.4) and stores the result. It reports false when the 304's strong
// validator does not select e.
func (s *Shared) update(e *entry, res *http.Response, reqTime, respTime time.Time) (*entry, bool) {
	if et := res.Header.Get("Etag"); et != "" && e.etag != "" && et != e.etag {
		return nil, false
	}
	ne := *e
	ne.header = e.header.Clone()
	for k, v := range storedHeader(res.Header, s.tags) {
		switch k {
		case "Content-Length", "Content-Encoding", "Content-Range", "Content-Md5", "Etag":
			// They describe the stored body, which a 304 does not replace.
			continue
		}
		ne.header[k] = v
	}
	ne.timing(reqTime, respTime, parseAge(res.Header), directives(ne.header, s.name))
	s.insert(&ne)
	return &ne, true
}

// flight is one request's fetch that others with the same key wait for.
type flight struct {
	once sync.Once
	done chan struct{}
	s    *Shared
	key  string
}

// end closes the flight; nil-safe and idempotent.
func (f *flight) end() {
	if f == nil {
		return
	}
	f.once.Do(func() {
		f.s.flightMu.Lock()
		if f.s.flights[f.key] == f {
			delete(f.s.flights, f.key)
		}
		f.s.flightMu.Unlock()
		close(f.done)
	})
}

// join returns the flight for key, and whether the caller leads it.
func (s *Shared) join(key string) (*flight, bool) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	if f, ok := s.flights[key]; ok {
		return f, false
	}
	f := &flight{done: make(chan struct{}), s: s, key: key}
	s.flights[key] = f
	return f, true
}

// wait waits for f to end, for at most LockTimeout. It reports false if
// it gave up (timeout or ctx), in which case the caller forwards itself.
func (s *Shared) wait(ctx context.Context, f *flight) bool {
	t := time.NewTimer(s.lockWait)
	defer t.Stop()
	select {
	case <-f.done:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// drainAll reads a response body to its end (storing it, if it is being
// stored) and closes it. Bounded by MaxEntryBytes in the cases that matter.
func drainAll(res *http.Response) {
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
}

// cloneHeader copies h as http.Header.Clone does, in two allocations, with
// extra spare value slots in the same backing array for the fields a hit
// adds (Age, Cache-Status): the hit path's allocations, measured by
// BenchmarkRoundTrip/hit.
func cloneHeader(h http.Header, extra int) (http.Header, []string) {
	nv := extra
	for _, vv := range h {
		nv += len(vv)
	}
	sv := make([]string, nv)
	out := make(http.Header, len(h)+extra)
	for k, vv := range h {
		if vv == nil {
			out[k] = nil
			continue
		}
		n := copy(sv, vv)
		out[k] = sv[:n:n]
		sv = sv[n:]
	}
	return out, sv
}
