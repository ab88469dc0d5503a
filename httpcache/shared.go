package httpcache

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// Config configures a Shared cache. Only Next is required.
type Config struct {
	// Next forwards a request to the origin (in the balancer: to a pool
	// member). Required. Its responses are owned by the cache until returned.
	Next http.RoundTripper
	// MaxBytes bounds the memory held by stored responses (bodies, fields
	// and keys, as weighed by the cache). If zero, 64 MiB is used.
	MaxBytes int64
	// MaxEntryBytes is the largest body stored; a larger response streams
	// through uncached and is never buffered whole. If zero, MaxBytes/64
	// is used (4 MiB for 256 MiB). It may not exceed MaxBytes.
	MaxEntryBytes int64
	// Name is this cache's name in the Cache-Status field (RFC 9211). If
	// empty, "scaleout" is used. It must be an HTTP token.
	Name string
	// TagHeaders are the response fields whose comma- or space-separated
	// values tag an entry for PurgeTag. They are removed from what clients
	// receive. If nil, Surrogate-Key and Cache-Tag are used.
	TagHeaders []string
	// UnkeyedHeaders are request fields removed before a GET or HEAD is
	// forwarded, because they are not part of the cache key and an origin
	// that reflected them would let one client poison the entry every
	// client gets. If nil, DefaultUnkeyedHeaders is used; set it to an
	// empty non-nil slice to forward everything. Proxy fields that the
	// balancer itself sets must be set inside Next, after the cache.
	UnkeyedHeaders []string
	// LockTimeout bounds how long a request waits for another request's
	// fetch of the same key (collapsed misses) before going to the origin
	// itself. If zero, 10s is used.
	LockTimeout time.Duration
	// Revalidators is the number of goroutines Run uses for
	// stale-while-revalidate; without Run, a stale response is revalidated
	// in the request instead. If zero, 4 is used.
	Revalidators int
	// Logger receives background revalidation failures. If nil, nothing
	// is logged.
	Logger *slog.Logger
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// DefaultUnkeyedHeaders lists request fields known from cache-poisoning
// research to change what origins send back without being part of any key.
var DefaultUnkeyedHeaders = []string{
	"X-Forwarded-Host", "X-Forwarded-Server", "X-Forwarded-Scheme", "X-Forwarded-Port",
	"X-Host", "X-Original-Url", "X-Rewrite-Url", "X-Original-Host",
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
}

// Stats is a snapshot of a Shared cache's counters.
type Stats struct {
	Hits          uint64 // answered from a fresh stored response (incl. 304s)
	Misses        uint64 // forwarded because nothing usable was stored
	StaleServed   uint64 // answered with a stale response (SWR, stale-if-error, max-stale)
	Revalidations uint64 // conditional requests to the origin that ended in 304
	Collapsed     uint64 // requests that waited for another's fetch instead of forwarding
	Stored        uint64 // responses stored
	Evicted       uint64 // entries evicted by the memory bound
	Purged        uint64 // entries removed by purge or invalidation
	Bypassed      uint64 // requests the cache did not consider (methods, ranges)
	Bytes         uint64 // bytes held, as weighed for MaxBytes
	Entries       int    // entries held, including Vary markers
}

// Shared is an RFC 9111 shared cache in front of an http.RoundTripper. It is
// safe for concurrent use. Create it with NewShared; start Run to get
// background revalidation for stale-while-revalidate.
type Shared struct {
	next     http.RoundTripper
	store    *otter.Cache[string, *entry]
	idx      index
	now      func() time.Time
	log      *slog.Logger
	name     string
	tags     []string
	unkeyed  []string
	maxEntry int64
	lockWait time.Duration
	workers  int

	hitStatus  string // precomputed "name; hit"
	capability string // Surrogate-Capability value naming this cache

	// flightMu guards flights.
	flightMu sync.Mutex
	flights  map[string]*flight

	running atomic.Bool
	bg      chan bgJob
	// bgMu guards bgKeys, the keys with a background revalidation queued.
	bgMu   sync.Mutex
	bgKeys map[string]struct{}

	hits, misses, stale, revals, collapsed, stored, evicted, purged, bypassed atomic.Uint64
}

// NewShared returns a Shared cache configured by cfg; see Config for the
// defaults. It starts no goroutines.
func NewShared(cfg Config) (*Shared, error) {
	if cfg.Next == nil {
		return nil, fmt.Errorf("Next is nil: %w", ErrBadConfig)
	}
	if cfg.MaxBytes < 0 || cfg.MaxEntryBytes < 0 || cfg.LockTimeout < 0 || cfg.Revalidators < 0 {
		return nil, fmt.Errorf("negative MaxBytes, MaxEntryBytes, LockTimeout or Revalidators: %w", ErrBadConfig)
	}
	s := &Shared{
		next: cfg.Next, now: cfg.Now, log: cfg.Logger, name: cfg.Name, tags: cfg.TagHeaders,
		unkeyed: cfg.UnkeyedHeaders, maxEntry: cfg.MaxEntryBytes, lockWait: cfg.LockTimeout,
		workers: cfg.Revalidators, flights: map[string]*flight{}, bgKeys: map[string]struct{}{},
	}
	max := cfg.MaxBytes
	if max == 0 {
		max = 64 << 20
	}
	if s.maxEntry == 0 {
		s.maxEntry = max / 64
	}
	if s.maxEntry > max || s.maxEntry > 1<<31 {
		return nil, fmt.Errorf("MaxEntryBytes %d exceeds MaxBytes %d or 2 GiB: %w", s.maxEntry, max, ErrBadConfig)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.name == "" {
		s.name = "scaleout"
	}
	if !isToken(s.name) {
		return nil, fmt.Errorf("Name %q is not an HTTP token: %w", s.name, ErrBadConfig)
	}
	if s.tags == nil {
		s.tags = []string{"Surrogate-Key", "Cache-Tag"}
	}
	if s.unkeyed == nil {
		s.unkeyed = DefaultUnkeyedHeaders
	}
	if s.lockWait == 0 {
		s.lockWait = 10 * time.Second
	}
	if s.workers == 0 {
		s.workers = 4
	}
	s.bg = make(chan bgJob, 64*s.workers)
	s.hitStatus = s.name + "; hit"
	s.capability = s.name + `="Surrogate/1.0"`
	s.idx.init()
	store, err := otter.New(&otter.Options[string, *entry]{
		MaximumWeight: uint64(max),
		Weigher:       func(_ string, e *entry) uint32 { return uint32(e.size) },
		// Run maintenance and deletion events on the calling goroutine:
		// no goroutine outlives a call, and the index stays in step.
		Executor:   func(fn func()) { fn() },
		OnDeletion: s.onDeletion,
	})
	if err != nil {
		return nil, fmt.Errorf("new store: %w", err)
	}
	s.store = store
	return s, nil
}

func (s *Shared) onDeletion(ev otter.DeletionEvent[string, *entry]) {
	if ev.WasEvicted() {
		s.evicted.Add(1)
	}
	s.idx.remove(ev.Value)
}

// Stats returns a snapshot of the counters. Safe for concurrent use.
func (s *Shared) Stats() Stats {
	return Stats{
		Hits: s.hits.Load(), Misses: s.misses.Load(), StaleServed: s.stale.Load(),
		Revalidations: s.revals.Load(), Collapsed: s.collapsed.Load(), Stored: s.stored.Load(),
		Evicted: s.evicted.Load(), Purged: s.purged.Load(), Bypassed: s.bypassed.Load(),
		Bytes: s.store.WeightedSize(), Entries: s.store.EstimatedSize(),
	}
}

// RoundTrip answers req from the cache or forwards it to Next, storing what
// RFC 9111 allows. Every response carries a Cache-Status field. The caller
// owns the returned response and must close its body; the cache stores a
// streamed response only once the body has been read to its end.
func (s *Shared) RoundTrip(req *http.Request) (*http.Response, error) {
	return s.roundTrip(req, false)
}

func (s *Shared) roundTrip(req *http.Request, waited bool) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return s.forwardMethod(req)
	}
	if req.Header.Get("If-Match") != "" || req.Header.Get("If-Unmodified-Since") != "" {
		// Preconditions that only the origin can judge, for a state it owns.
		s.bypassed.Add(1)
		return s.forward(req, "fwd=bypass")
	}
	reqCC := requestDirectives(req.Header)
	primary := primaryKey(req)
	now := s.now()
	e, key, fwd := s.lookup(primary, req.Header)
	ranged := req.Header.Get("Range") != ""
	if ranged {
		// A range is served from a fresh complete response; partial
		// responses are never stored, so anything else goes through.
		if e != nil && s.usable(e, reqCC, now) == useFresh {
			if res := s.serveRange(req, e, now); res != nil {
				s.hits.Add(1)
				return res, nil
			}
		} else {
			s.bypassed.Add(1)
			return s.forward(req, "fwd=bypass; detail=range")
		}
	}
	if e != nil {
		switch u := s.usable(e, reqCC, now); u {
		case useFresh:
			s.hits.Add(1)
			if waited {
				s.collapsed.Add(1)
				return s.serve(req, e, now, "hit; collapsed"), nil
			}
			return s.serve(req, e, now, ""), nil
		case useStale:
			s.stale.Add(1)
			return s.serve(req, e, now, "hit; detail=max-stale"), nil
		case useStaleRevalidate:
			if s.enqueue(req, e) {
				s.stale.Add(1)
				return s.serve(req, e, now, "hit; detail=stale-while-revalidate"), nil
			}
		}
		if reqCC.OnlyIfCached {
			return s.notCached(req), nil
		}
		return s.revalidate(req, reqCC, e, waited)
	}
	if reqCC.OnlyIfCached {
		return s.notCached(req), nil
	}
	s.misses.Add(1)
	if req.Method == http.MethodHead || waited {
		return s.fetch(req, reqCC, nil, "fwd="+fwd)
	}
	f, leader := s.join(key)
	if !leader {
		if s.wait(req.Context(), f) {
			return s.roundTrip(req, true)
		}
		return s.fetch(req, reqCC, nil, "fwd="+fwd)
	}
	return s.fetch(req, reqCC, f, "fwd="+fwd)
}

// lookup finds the stored response for req: the entry at the primary key,
// or, when that is a Vary marker, the variant that req's fields select
// (RFC 9111 section 4.1). key is where a response would be stored.
func (s *Shared) lookup(primary string, h http.Header) (e *entry, key, fwd string) {
	e, ok := s.store.GetIfPresent(primary)
	if !ok {
		return nil, primary, "uri-miss"
	}
	if !e.marker {
		return e, primary, ""
	}
	key = variantKey(primary, e.vary, h)
	v, ok := s.store.GetIfPresent(key)
	if !ok {
		return nil, key, "vary-miss"
	}
	return v, key, ""
}

type usability int

const (
	useNot usability = iota
	useFresh
	useStale
	useStaleRevalidate
)

// usable decides whether e may answer a request with directives reqCC now
// (RFC 9111 sections 4.2, 4.2.4 and 5.2.1, RFC 5861 section 3).
func (s *Shared) usable(e *entry, reqCC Directives, now time.Time) usability {
	if e.cc.NoCache || reqCC.NoCache {
		return useNot
	}
	age := e.age(now)
	if reqCC.MaxAge == 0 || (reqCC.MaxAge > 0 && age > time.Duration(reqCC.MaxAge)*time.Second) {
		return useNot
	}
	if reqCC.MinFresh >= 0 && e.lifetime-age < time.Duration(reqCC.MinFresh)*time.Second {
		return useNot
	}
	if age < e.lifetime {
		return useFresh
	}
	if e.cc.MustRevalidate || e.cc.ProxyRevalidate || e.cc.SMaxAge >= 0 {
		return useNot
	}
	staleness := age - e.lifetime
	if reqCC.MaxStaleAny || (reqCC.MaxStale >= 0 && staleness <= time.Duration(reqCC.MaxStale)*time.Second) {
		return useStale
	}
	if e.cc.StaleWhileRevalidate >= 0 && staleness < time.Duration(e.cc.StaleWhileRevalidate)*time.Second {
		return useStaleRevalidate
	}
	return useNot
}

// staleIfError reports whether e may answer in place of an error
// (RFC 5861 section 4), by the response's or the request's directive.
func staleIfError(e *entry, reqCC Directives, now time.Time) bool {
	if e.cc.MustRevalidate || e.cc.ProxyRevalidate || e.cc.SMaxAge >= 0 || e.cc.NoCache {
		return false
	}
	staleness := e.age(now) - e.lifetime
	limit := max(e.cc.StaleIfError, reqCC.StaleIfError)
	return limit >= 0 && staleness <= time.Duration(limit)*time.Second
}

// requestDirectives reads a request's Cache-Control, with Pragma: no-cache
// standing for no-cache when Cache-Control is absent (RFC 9111 section 5.4).
func requestDirectives(h http.Header) Directives {
	cc := h.Values("Cache-Control")
	if len(cc) == 0 {
		d := NoDirectives()
		for _, p := range h.Values("Pragma") {
			if strings.Contains(strings.ToLower(p), "no-cache") {
				d.NoCache = true
			}
		}
		return d
	}
	return ParseCacheControl(cc)
}

// notCached is the 504 of RFC 9111 section 5.2.1.7 for only-if-cached.
func (s *Shared) notCached(req *http.Request) *http.Response {
	res := newResponse(req, http.StatusGatewayTimeout, http.Header{}, nil)
	res.Header["Cache-Status"] = []string{s.name + "; fwd=miss; detail=only-if-cached"}
	return res
}

// forwardMethod passes a request whose method the cache does not answer,
// and invalidates the target URI and its Location and Content-Location
// after a successful unsafe method (RFC 9111 section 4.4).
func (s *Shared) forwardMethod(req *http.Request) (*http.Response, error) {
	s.bypassed.Add(1)
	base := primaryKey(req) // before Next, which may rewrite its copy's URL
	res, err := s.next.RoundTrip(s.outgoing(req, false))
	if err != nil {
		return nil, err
	}
	if !isSafe(req.Method) && res.StatusCode >= 200 && res.StatusCode < 400 {
		s.purgeKey(base)
		for _, f := range [...]string{"Location", "Content-Location"} {
			if v := res.Header.Get(f); v != "" {
				if k, ok := relatedKey(req, v); ok && k != base {
					s.purgeKey(k)
				}
			}
		}
	}
	s.addStatus(res.Header, "fwd=method")
	return res, nil
}

// forward passes req on without storing the response.
func (s *Shared) forward(req *http.Request, status string) (*http.Response, error) {
	res, err := s.next.RoundTrip(s.outgoing(req, false))
	if err != nil {
		return nil, err
	}
	s.addStatus(res.Header, status)
	return res, nil
}

// outgoing copies req for Next, without unkeyed fields, and without the
// client's validators when the cache sends its own.
func (s *Shared) outgoing(req *http.Request, ownValidators bool) *http.Request {
	out := req.Clone(req.Context())
	for _, f := range s.unkeyed {
		out.Header.Del(f)
	}
	out.Header.Set("Surrogate-Capability", s.capability)
	if ownValidators {
		out.Header.Del("If-None-Match")
		out.Header.Del("If-Modified-Since")
	}
	return out
}

func (s *Shared) addStatus(h http.Header, params string) {
	h["Cache-Status"] = append(h["Cache-Status"], s.name+"; "+params)
}

func isSafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// drain reads a little of a body we do not pass on, so the connection can
// be reused, then closes it.
func drain(rc io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, rc, 64<<10)
	_ = rc.Close()
}

// newResponse builds a response to req with the given parts.
func newResponse(req *http.Request, code int, h http.Header, body []byte) *http.Response {
	// One allocation holds the response and its body reader.
	r := &struct {
		res  http.Response
		body bodyReader
	}{}
	r.res = http.Response{
		Status:     statusLine(code),
		StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Request: req, ContentLength: int64(len(body)), Body: http.NoBody,
	}
	if len(body) > 0 {
		r.body.data = body
		r.res.Body = &r.body
	}
	return &r.res
}

// statusLine is "200 OK" for 200, without formatting for the common codes.
func statusLine(code int) string {
	switch code {
	case http.StatusOK:
		return "200 OK"
	case http.StatusNotModified:
		return "304 Not Modified"
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// bodyReader serves a stored body: one allocation instead of NopCloser's two.
type bodyReader struct {
	data []byte
	off  int
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.off >= len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	return n, nil
}

func (b *bodyReader) Close() error { return nil }

// WriteTo lets io.Copy write the stored body in one call.
func (b *bodyReader) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b.data[b.off:])
	b.off += n
	return int64(n), err
}

var _ http.RoundTripper = (*Shared)(nil)
