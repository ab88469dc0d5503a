package httpcache

import (
	"net/http"
	"slices"
	"strconv"
)

// HitField is one request header field as a proxy parsed it.
type HitField struct {
	Name, Value []byte
}

// HitRequest is a GET or HEAD request in the parsed form a proxy already
// holds, for AppendHit. The cache reads it during the call only and keeps
// none of its slices.
type HitRequest struct {
	// Method is the request method; only GET and HEAD can hit.
	Method []byte
	// Host is the Host field: the authority the client named.
	Host []byte
	// Target is the request-target in origin-form ("/path?query").
	Target []byte
	// Fields are the request's end-to-end fields in the order received:
	// without Host and without hop-by-hop fields, exactly those a
	// RoundTrip request built from the same message would carry.
	Fields []HitField
}

// AppendHit answers r from a fresh stored response without building an
// *http.Request: the fast path of a proxy that parses HTTP itself. On a
// hit it appends the response head to dst (status line and fields,
// serialized once when the response was stored, then Content-Length, Age
// and Cache-Status for this hit) without the empty line that ends the head,
// so the caller can add its own hop-by-hop fields; it returns the extended
// slice, the body to send after the head (nil for HEAD and 204; shared by
// every hit, so it must not be modified), and true.
//
// AppendHit declines (dst unchanged, ok false) anything it does not answer
// exactly as RoundTrip would: a method other than GET or HEAD, a target or
// host it cannot key verbatim, request directives (Cache-Control, Pragma),
// conditional requests, ranges, Authorization, a miss, a Vary'd request
// whose variant is not stored, and a stored response that is not fresh.
// The caller then sends the same request through RoundTrip. It is safe for
// concurrent use.
func (s *Shared) AppendHit(dst []byte, r *HitRequest) (head, body []byte, ok bool) {
	head, body, ok = s.appendHit(dst, r)
	if !ok {
		return dst, nil, false
	}
	return head, body, true
}

func (s *Shared) appendHit(dst []byte, r *HitRequest) ([]byte, []byte, bool) {
	isHead := string(r.Method) == http.MethodHead
	if !isHead && string(r.Method) != http.MethodGet {
		return nil, nil, false
	}
	for i := range r.Fields {
		if declinedField(r.Fields[i].Name) {
			return nil, nil, false
		}
	}
	// The key is built in dst's spare room, then copied once to a string.
	start := len(dst)
	kb, ok := appendHitKey(dst, r.Host, r.Target)
	if !ok {
		return nil, nil, false
	}
	e, found := s.store.GetIfPresent(string(kb[start:]))
	if !found {
		return nil, nil, false
	}
	if e.marker {
		key, ok := variantKeyFields(kb[start:], e.vary, r.Fields)
		if !ok {
			return nil, nil, false
		}
		if e, found = s.store.GetIfPresent(key); !found || e.marker {
			return nil, nil, false
		}
	}
	dst = kb[:start]
	now := s.now()
	if e.wire == nil || s.usable(e, NoDirectives(), now) != useFresh {
		return nil, nil, false
	}
	s.hits.Add(1)
	dst = append(dst, e.wire...)
	dst = append(dst, "Age: "...)
	dst = strconv.AppendInt(dst, int64(max(0, e.age(now))/1e9), 10)
	dst = append(dst, "\r\nCache-Status: "...)
	dst = append(dst, s.hitStatus...)
	dst = append(dst, "\r\n"...)
	if isHead || e.status == http.StatusNoContent {
		return dst, nil, true
	}
	return dst, e.body, true
}

// declinedField reports whether a request field makes AppendHit defer to
// RoundTrip: request directives (RFC 9111 section 5.2.1, 5.4),
// preconditions (RFC 9110 section 13), Range, and Authorization.
func declinedField(name []byte) bool {
	switch len(name) {
	case 5:
		return asciiFold(name, "range")
	case 6:
		return asciiFold(name, "pragma")
	case 8:
		return asciiFold(name, "if-match")
	case 13:
		return asciiFold(name, "cache-control") || asciiFold(name, "if-none-match") || asciiFold(name, "authorization")
	case 17:
		return asciiFold(name, "if-modified-since")
	case 19:
		return asciiFold(name, "if-unmodified-since")
	}
	return false
}

// appendHitKey appends the primary key of RFC 9111 section 2 for an http
// request with this Host and origin-form target, exactly as primaryKey
// computes it for the *http.Request a proxy builds with url.ParseRequestURI.
// It declines hosts and targets where that is not plainly the bytes given.
func appendHitKey(dst, host, target []byte) ([]byte, bool) {
	if len(host) == 0 || len(target) == 0 || target[0] != '/' {
		return nil, false
	}
	dst = append(dst, "http://"...)
	for _, c := range host {
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c <= ' ' || c >= 0x7f:
			return nil, false
		}
		dst = append(dst, c)
	}
	inPath := true
	for i := 0; i < len(target); i++ {
		c := target[i]
		switch {
		case c == '?':
			inPath = false
		case c == '%':
			if inPath && (i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2])) {
				return nil, false
			}
		case !plainTargetByte(c):
			return nil, false
		}
	}
	return append(dst, target...), true
}

// plainTargetByte reports the bytes that net/url keeps as they are in a
// request-target: unreserved and sub-delims, ':', '@' and '/'.
func plainTargetByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '/', ':', '@', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=':
		return true
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// variantKeyFields is variantKey for parsed fields: the same key for the
// same message. It declines field names that http.Header would not
// canonicalize case-insensitively (non-token names).
func variantKeyFields(primary []byte, names []string, fields []HitField) (string, bool) {
	for i := range fields {
		if !isToken(string(fields[i].Name)) {
			return "", false
		}
	}
	// primary lies in the caller's scratch space: appending in place
	// costs no allocation but the final string.
	b := primary
	for _, n := range names {
		b = append(b, 0)
		b = append(b, n...)
		present := false
		for i := range fields {
			f := &fields[i]
			if !asciiFold(f.Name, n) {
				continue
			}
			if present {
				b = append(b, ',')
			} else {
				b = append(b, ':')
				present = true
			}
			b = appendTrimmedList(b, f.Value)
		}
		if !present {
			b = append(b, 1)
		}
	}
	return string(b), true
}

// appendTrimmedList appends a comma-separated value with the whitespace
// around each element removed, as variantKey normalizes it.
func appendTrimmedList(b, v []byte) []byte {
	for j := 0; ; j++ {
		part := v
		i := indexByte(v, ',')
		if i >= 0 {
			part, v = v[:i], v[i+1:]
		}
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, trimOWS(part)...)
		if i < 0 {
			return b
		}
	}
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// trimOWS trims what strings.TrimSpace trims from ASCII text.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// asciiFold reports whether b equals s ignoring ASCII case.
func asciiFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// wireHead serializes a stored response's status line and fields once, at
// store time, in the form AppendHit sends: the fields as stored (hop-by-hop
// and tag fields were removed), sorted by name, with Content-Length from
// the body rather than from a stored field, and none for 204.
func wireHead(e *entry) []byte {
	names := make([]string, 0, len(e.header))
	n := 64
	for k, vs := range e.header {
		if k == "Content-Length" {
			continue
		}
		names = append(names, k)
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	slices.Sort(names)
	b := make([]byte, 0, n)
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(e.status)...)
	b = append(b, "\r\n"...)
	for _, k := range names {
		for _, v := range e.header[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if e.status != http.StatusNoContent {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(e.body)), 10)
		b = append(b, "\r\n"...)
	}
	return b
}
