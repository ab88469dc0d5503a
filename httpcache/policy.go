package httpcache

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Policy is a deliberate Cache-Control for an app server's responses
// (RFC 9111 section 5.2.2). Durations are whole seconds; a zero duration
// leaves its directive out, a negative MaxAge or SMaxAge writes 0.
type Policy struct {
	Public         bool // any cache may store it, even for a request with Authorization
	Private        bool // only the user's own browser may store it
	NoStore        bool // nobody may store it
	NoCache        bool // stored copies must be revalidated before each use
	MustRevalidate bool // once stale, never served without revalidation
	Immutable      bool // will not change while fresh: browsers skip reload revalidation
	// MaxAge is the freshness lifetime for every cache.
	MaxAge time.Duration
	// SMaxAge overrides MaxAge for shared caches (the balancer).
	SMaxAge time.Duration
	// StaleWhileRevalidate lets a cache answer stale this long while it
	// revalidates in the background (RFC 5861).
	StaleWhileRevalidate time.Duration
	// StaleIfError lets a cache answer stale this long when the origin
	// fails (RFC 5861).
	StaleIfError time.Duration
	// Vary names the request fields that select the representation,
	// such as Accept-Encoding or Cookie.
	Vary []string
}

// Validate reports contradictions, such as Public with Private.
func (p Policy) Validate() error {
	switch {
	case p.Public && p.Private:
		return fmt.Errorf("policy is both public and private: %w", ErrBadConfig)
	case p.NoStore && (p.MaxAge > 0 || p.SMaxAge > 0 || p.Public):
		return fmt.Errorf("policy is no-store but sets public or a max-age: %w", ErrBadConfig)
	case p.Private && p.SMaxAge != 0:
		return fmt.Errorf("policy is private but sets s-maxage: %w", ErrBadConfig)
	}
	return nil
}

// String formats the policy as a Cache-Control field value.
func (p Policy) String() string {
	var b []byte
	add := func(on bool, s string) {
		if on {
			b = appendSep(b)
			b = append(b, s...)
		}
	}
	secs := func(d time.Duration, name string) {
		if d != 0 {
			b = appendSep(b)
			b = append(b, name...)
			b = append(b, '=')
			b = strconv.AppendInt(b, max(0, int64(d/time.Second)), 10)
		}
	}
	add(p.Public, "public")
	add(p.Private, "private")
	add(p.NoStore, "no-store")
	add(p.NoCache, "no-cache")
	secs(p.MaxAge, "max-age")
	secs(p.SMaxAge, "s-maxage")
	add(p.MustRevalidate, "must-revalidate")
	add(p.Immutable, "immutable")
	secs(p.StaleWhileRevalidate, "stale-while-revalidate")
	secs(p.StaleIfError, "stale-if-error")
	return string(b)
}

// Apply sets Cache-Control (and Vary) on h, replacing what was there.
func (p Policy) Apply(h http.Header) {
	if v := p.String(); v != "" {
		h.Set("Cache-Control", v)
	}
	for _, f := range p.Vary {
		h.Add("Vary", f)
	}
}

// Middleware returns a handler that applies p to every response of next
// before the handler writes, unless the handler sets Cache-Control itself
// after. It returns an error for a policy that fails Validate.
func (p Policy) Middleware(next http.Handler) (http.Handler, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if next == nil {
		return nil, fmt.Errorf("policy middleware: next handler is nil: %w", ErrBadConfig)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.Apply(w.Header())
		next.ServeHTTP(w, r)
	}), nil
}
