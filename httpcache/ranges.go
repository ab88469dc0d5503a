package httpcache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// byteRange parses a Range field with one byte range (RFC 9110 section
// 14.1.2) against a representation of size bytes. ok is false for anything
// this cache does not serve itself (several ranges, other units, syntax
// errors): the Range is then ignored and the whole response sent, which
// section 14.2 allows. satisfiable is false when the range lies outside.
func byteRange(v string, size int) (start, end int, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(v), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if first == "" { // suffix: the last n bytes
		n, err := strconv.Atoi(last)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true, false
		}
		return max(0, size-n), size - 1, true, true
	}
	a, err := strconv.Atoi(first)
	if err != nil || a < 0 {
		return 0, 0, false, false
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.Atoi(last); err != nil || b < a {
			return 0, 0, false, false
		}
	}
	if a >= size {
		return 0, 0, true, false
	}
	return a, min(b, size-1), true, true
}

// ifRangeHolds evaluates If-Range (RFC 9110 section 13.1.5) against e: a
// strong entity-tag match, or an exact Last-Modified date.
func ifRangeHolds(h http.Header, e *entry) bool {
	v := h.Get("If-Range")
	if v == "" {
		return true
	}
	if t, err := ParseETag(v); err == nil {
		cur, err := ParseETag(e.etag)
		return err == nil && t.StrongMatch(cur)
	}
	d, ok := ParseHTTPDate(v)
	lm, lmOK := ParseHTTPDate(e.lastMod)
	return ok && lmOK && d.Equal(lm)
}

// serveRange answers a Range request from a complete stored 200, or
// returns nil when the whole response should be sent instead.
func (s *Shared) serveRange(req *http.Request, e *entry, now time.Time) *http.Response {
	if e.status != http.StatusOK || !ifRangeHolds(req.Header, e) {
		return nil
	}
	start, end, ok, satisfiable := byteRange(req.Header.Get("Range"), len(e.body))
	if !ok {
		return nil
	}
	h := e.header.Clone()
	h["Age"] = []string{ageSeconds(e.age(now))}
	h["Cache-Status"] = []string{s.name + "; hit; detail=range"}
	size := strconv.Itoa(len(e.body))
	if !satisfiable {
		h["Content-Range"] = []string{"bytes */" + size}
		delete(h, "Content-Type")
		h["Content-Length"] = []string{"0"}
		return newResponse(req, http.StatusRequestedRangeNotSatisfiable, h, nil)
	}
	h["Content-Range"] = []string{"bytes " + strconv.Itoa(start) + "-" + strconv.Itoa(end) + "/" + size}
	body := e.body[start : end+1]
	n := int64(len(body))
	h["Content-Length"] = []string{strconv.FormatInt(n, 10)}
	if req.Method == http.MethodHead {
		body = nil
	}
	res := newResponse(req, http.StatusPartialContent, h, body)
	res.ContentLength = n
	return res
}
