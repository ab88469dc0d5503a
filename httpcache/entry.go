package httpcache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// entry is one stored response. It is immutable once stored: a 304 that
// updates it stores a new entry, so readers need no lock.
type entry struct {
	key        string      // the otter key: primary key, plus variant for Vary
	primary    string      // method-less target URI key
	marker     bool        // a Vary marker: names only, no response
	vary       []string    // canonical Vary field names (for markers and variants)
	status     int         // response status code
	statusLine string      // "200 OK"
	proto      string      // "HTTP/1.1"
	header     http.Header // stored header fields (hop-by-hop and tags removed)
	body       []byte
	tags       []string // purge tags from the tag headers

	reqTime  time.Time // when the request that produced it was sent
	respTime time.Time // when its response arrived
	// initialAge is corrected_initial_age of RFC 9111 section 4.2.3.
	initialAge time.Duration
	// lifetime is the freshness lifetime of section 4.2.1.
	lifetime time.Duration
	cc       Directives
	etag     string // ETag field value, "" if none
	lastMod  string // Last-Modified field value, "" if none
	size     int    // weight in bytes for the eviction policy
	wire     []byte // status line and fields as AppendHit sends them; set by insert
}

// age is current_age of RFC 9111 section 4.2.3 at now.
func (e *entry) age(now time.Time) time.Duration {
	return e.initialAge + max(0, now.Sub(e.respTime))
}

// heuristicStatus lists the status codes that are heuristically cacheable
// (RFC 9110 section 15.1), minus 206, which this cache does not store.
func heuristicStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understoodStatus lists the final status codes whose caching semantics this
// cache implements, for must-understand (RFC 9111 section 5.2.2.3).
func understoodStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// maxHeuristic caps heuristic freshness, whatever the Last-Modified age.
const maxHeuristic = 24 * time.Hour

// freshnessLifetime implements RFC 9111 section 4.2.1 for a shared cache:
// s-maxage, then max-age, then Expires minus Date, then (where section
// 4.2.2 allows it) 10% of the time since Last-Modified. An invalid Expires
// means already expired.
func freshnessLifetime(h http.Header, cc Directives, status int, date time.Time) time.Duration {
	switch {
	case cc.SMaxAge >= 0:
		return time.Duration(cc.SMaxAge) * time.Second
	case cc.MaxAge >= 0:
		return time.Duration(cc.MaxAge) * time.Second
	}
	if exp, present := h["Expires"]; present {
		if len(exp) != 1 {
			return 0
		}
		t, ok := ParseHTTPDate(exp[0])
		if !ok {
			return 0
		}
		return max(0, t.Sub(date))
	}
	if !heuristicStatus(status) && !cc.Public {
		return 0
	}
	if lm, ok := ParseHTTPDate(h.Get("Last-Modified")); ok && lm.Before(date) {
		return min(date.Sub(lm)/10, maxHeuristic)
	}
	return 0
}

// hasExplicitFreshness reports whether a response says how long it may be
// stored, one of the conditions of RFC 9111 section 3.
func hasExplicitFreshness(h http.Header, cc Directives) bool {
	return cc.Public || cc.MaxAge >= 0 || cc.SMaxAge >= 0 || len(h["Expires"]) > 0
}

// storable decides RFC 9111 section 3 for a shared cache, and returns why
// not as a Cache-Status detail when it is not storable.
func storable(req *http.Request, reqCC Directives, res *http.Response, cc Directives) (bool, string) {
	switch {
	case req.Method != http.MethodGet:
		return false, "method"
	case res.StatusCode < 200 || res.StatusCode == http.StatusPartialContent || res.StatusCode == http.StatusNotModified:
		return false, "status"
	case reqCC.NoStore:
		return false, "request-no-store"
	case cc.NoStore && !(cc.MustUnderstand && understoodStatus(res.StatusCode)):
		return false, "no-store"
	case cc.MustUnderstand && !understoodStatus(res.StatusCode):
		return false, "must-understand"
	case cc.Private:
		return false, "private"
	case req.Header.Get("Authorization") != "" && !(cc.MustRevalidate || cc.Public || cc.SMaxAge >= 0):
		return false, "authorization"
	case len(res.Header["Set-Cookie"]) > 0:
		// RFC 9111 section 7.3 leaves this to the cache; one user's
		// cookie handed to everyone is a session hijack, so never store.
		return false, "set-cookie"
	case hasStar(res.Header.Values("Vary")):
		return false, "vary-star"
	case !hasExplicitFreshness(res.Header, cc) && !heuristicStatus(res.StatusCode):
		return false, "no-freshness"
	}
	return true, ""
}

// hopHeaders are removed before storing (RFC 9111 section 3.1 and RFC 9110
// section 7.6.1), together with any field that Connection names.
var hopHeaders = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization"}

// storedHeader copies h without hop-by-hop fields and tag fields.
func storedHeader(h http.Header, tagHeaders []string) http.Header {
	out := h.Clone()
	for _, c := range h.Values("Connection") {
		for f := range strings.SplitSeq(c, ",") {
			out.Del(strings.TrimSpace(f))
		}
	}
	for _, f := range hopHeaders {
		out.Del(f)
	}
	for _, f := range tagHeaders {
		out.Del(f)
	}
	out.Del("Age")
	out.Del("Cache-Status")
	out.Del("Surrogate-Control")
	return out
}

// parseTags splits the tag fields of h on commas and spaces.
func parseTags(h http.Header, tagHeaders []string) []string {
	var tags []string
	for _, name := range tagHeaders {
		for _, v := range h.Values(name) {
			tags = append(tags, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })...)
		}
	}
	return tags
}

// parseAge reads the Age field (RFC 9111 section 5.1). Absent is 0. A value
// that is not a single delta-seconds (a list, a sign, a fraction, a
// parameter) cannot be trusted, so the response is taken as stale: the
// largest age is returned.
func parseAge(h http.Header) time.Duration {
	v := h.Values("Age")
	if len(v) == 0 {
		return 0
	}
	n, ok := parseDelta(strings.TrimSpace(v[0]))
	if !ok || len(v) > 1 {
		return maxDelta * time.Second
	}
	return time.Duration(n) * time.Second
}

// timing fills in the entry's ages and lifetime from its header and the
// request and response times (RFC 9111 sections 4.2.1 and 4.2.3).
func (e *entry) timing(reqTime, respTime time.Time, ageValue time.Duration, cc Directives) {
	e.reqTime, e.respTime = reqTime, respTime
	date, ok := ParseHTTPDate(e.header.Get("Date"))
	if !ok {
		date = respTime
	}
	apparent := max(0, respTime.Sub(date))
	corrected := ageValue + respTime.Sub(reqTime)
	e.initialAge = max(apparent, corrected)
	e.cc = cc
	e.lifetime = freshnessLifetime(e.header, e.cc, e.status, date)
	e.etag = e.header.Get("Etag")
	e.lastMod = e.header.Get("Last-Modified")
}

// weigh estimates the bytes the entry holds: body, fields and keys.
func (e *entry) weigh() {
	n := len(e.body) + len(e.key) + len(e.primary) + len(e.wire) + 256
	for k, vs := range e.header {
		for _, v := range vs {
			n += len(k) + len(v) + 32
		}
	}
	for _, t := range e.tags {
		n += len(t) + 16
	}
	e.size = n
}

// ageSeconds formats an age for the Age field: whole seconds, rounded down.
func ageSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(max(0, d)/time.Second), 10)
}

func hasStar(vary []string) bool {
	for _, v := range vary {
		for f := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(f) == "*" {
				return true
			}
		}
	}
	return false
}

// directives returns the Cache-Control of a response as this cache obeys
// it: Surrogate-Control directives addressed to the cache (no target, or
// ";name") take precedence, as Edge Architecture Specification 1.0 says a
// surrogate must: its max-age becomes the shared freshness and overrides
// no-store and private, and its no-store forbids storing.
func directives(h http.Header, name string) Directives {
	cc := ParseCacheControl(h.Values("Cache-Control"))
	sc := h.Values("Surrogate-Control")
	if len(sc) == 0 {
		return cc
	}
	var mine []string
	for _, line := range sc {
		for d := range strings.SplitSeq(line, ",") {
			d = strings.TrimSpace(d)
			if i := strings.IndexByte(d, ';'); i >= 0 {
				if !strings.EqualFold(strings.TrimSpace(d[i+1:]), name) {
					continue
				}
				d = d[:i]
			}
			mine = append(mine, d)
		}
	}
	s := ParseCacheControl(mine)
	switch {
	case s.NoStore:
		cc.NoStore, cc.MustUnderstand = true, false
	case s.MaxAge >= 0:
		cc.NoStore, cc.Private, cc.SMaxAge = false, false, s.MaxAge
	}
	return cc
}
