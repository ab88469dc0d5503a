package httpcache

import (
	"net/http"
	"time"
)

// Validators describe the selected representation's current state, for
// evaluating preconditions.
type Validators struct {
	// ETag is the current entity-tag field value ("" if none), e.g. from
	// ContentETag or VersionETag.
	ETag string
	// LastModified is when it last changed; the zero time if unknown.
	// HTTP dates have whole seconds, so it is compared truncated.
	LastModified time.Time
	// Missing is set when there is no current representation (a PUT that
	// would create it): then If-Match fails and If-None-Match: * passes.
	Missing bool
}

// Precondition is the outcome of evaluating a request's conditions.
type Precondition int

// The outcomes of CheckPreconditions.
const (
	// Proceed: perform the method normally.
	Proceed Precondition = iota
	// NotModified: answer 304 (GET or HEAD only).
	NotModified
	// Failed: answer 412 Precondition Failed.
	Failed
)

// EvaluatePreconditions evaluates If-Match, If-Unmodified-Since,
// If-None-Match and If-Modified-Since of r against v, in the order of RFC
// 9110 section 13.2.2: If-Match beats If-Unmodified-Since, If-None-Match
// beats If-Modified-Since, and If-Modified-Since counts only for GET and
// HEAD. Invalid dates make their field ignored, as section 13.1 requires.
func EvaluatePreconditions(r *http.Request, v Validators) Precondition {
	cur, curErr := ParseETag(v.ETag)
	hasTag := !v.Missing && curErr == nil
	lm := v.LastModified.Truncate(time.Second)
	if im := r.Header.Values("If-Match"); len(im) > 0 {
		tags, any, _ := ParseETagList(im)
		match := any && !v.Missing
		for _, t := range tags {
			match = match || (hasTag && t.StrongMatch(cur))
		}
		if !match {
			return Failed
		}
	} else if ius, ok := ParseHTTPDate(r.Header.Get("If-Unmodified-Since")); ok && !v.Missing && !v.LastModified.IsZero() {
		// Without a modification date the field is ignored (section 13.1.4).
		if lm.After(ius) {
			return Failed
		}
	}
	safe := r.Method == http.MethodGet || r.Method == http.MethodHead
	if inm := r.Header.Values("If-None-Match"); len(inm) > 0 {
		tags, any, _ := ParseETagList(inm)
		match := any && !v.Missing
		for _, t := range tags {
			match = match || (hasTag && t.WeakMatch(cur))
		}
		if match {
			if safe {
				return NotModified
			}
			return Failed
		}
	} else if ims, ok := ParseHTTPDate(r.Header.Get("If-Modified-Since")); ok && safe && !v.LastModified.IsZero() {
		if !lm.After(ims) {
			return NotModified
		}
	}
	return Proceed
}

// CheckPreconditions sets ETag and Last-Modified from v on w, evaluates the
// request's preconditions, and writes the 304 or 412 itself when they say
// so. It reports whether it answered; if true, the handler must return
// without writing. Handlers that know their version call it before doing
// the work, so a 304 costs nothing but the lookup of the version.
func CheckPreconditions(w http.ResponseWriter, r *http.Request, v Validators) (done bool) {
	h := w.Header()
	if v.ETag != "" && !v.Missing {
		h.Set("Etag", v.ETag)
	}
	if !v.LastModified.IsZero() && !v.Missing {
		h.Set("Last-Modified", v.LastModified.UTC().Format(http.TimeFormat))
	}
	switch EvaluatePreconditions(r, v) {
	case NotModified:
		for _, f := range [...]string{"Content-Type", "Content-Length", "Content-Encoding"} {
			h.Del(f)
		}
		w.WriteHeader(http.StatusNotModified)
		return true
	case Failed:
		http.Error(w, "precondition failed", http.StatusPreconditionFailed)
		return true
	}
	return false
}
