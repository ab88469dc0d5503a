package balancer

import (
	"bytes"
	"net/netip"
)

// Selector is a load-balancing policy: it picks one member of pool for r.
// pool holds only members that may take new work (ready, not ejected), is
// never empty when Select is called, and must not be modified or retained
// beyond the call except as a cache key (a given pool slice is immutable: the
// balancer builds a new one when membership or health changes).
// Implementations must be safe for concurrent use; the hot path calls Select
// once per request, so it must not allocate.
//
// Unlike httputil's seam, Select receives a *Request view rather than an
// *http.Request: the data path parses requests in place and building an
// *http.Request would cost about ten allocations per request.
type Selector interface {
	Select(pool []*Backend, r *Request) (*Backend, bool)
}

// Request is the part of a client request that a policy may look at. Its
// byte slices point into the connection's read buffer: they are valid only
// during Select and must not be retained or modified.
type Request struct {
	// Method and Target are the request line's method and request-target.
	Method []byte
	Target []byte
	// ClientIP is the address of the peer that sent the request.
	ClientIP netip.Addr
	// Now is the monotonic time at which the request arrived, in
	// nanoseconds on the balancer's clock (see Backend.Cost).
	Now int64

	headers []headerField
}

// headerField is one header line of a parsed request, pointing into the
// connection's read buffer.
type headerField struct {
	name, value []byte
}

// Path is the request-target without its query string.
func (r *Request) Path() []byte {
	if i := bytes.IndexByte(r.Target, '?'); i >= 0 {
		return r.Target[:i]
	}
	return r.Target
}

// Header returns the value of the first header field named name (matched
// case-insensitively), or nil.
func (r *Request) Header(name string) []byte {
	for i := range r.headers {
		if equalFold(r.headers[i].name, name) {
			return r.headers[i].value
		}
	}
	return nil
}

// Cookie returns the value of the named cookie from the Cookie header
// fields, or nil. It does not allocate.
func (r *Request) Cookie(name string) []byte {
	for i := range r.headers {
		if !equalFold(r.headers[i].name, "cookie") {
			continue
		}
		if v, ok := findCookie(r.headers[i].value, name); ok {
			return v
		}
	}
	return nil
}

// findCookie scans a Cookie header value ("a=1; b=2") for name.
func findCookie(h []byte, name string) ([]byte, bool) {
	for len(h) > 0 {
		var pair []byte
		if i := bytes.IndexByte(h, ';'); i >= 0 {
			pair, h = h[:i], h[i+1:]
		} else {
			pair, h = h, nil
		}
		pair = trimOWS(pair)
		eq := bytes.IndexByte(pair, '=')
		if eq < 0 || string(pair[:eq]) != name {
			continue
		}
		v := pair[eq+1:]
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v, true
	}
	return nil, false
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// ASCII case in b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
