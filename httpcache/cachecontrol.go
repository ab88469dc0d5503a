package httpcache

import (
	"strconv"
	"strings"
)

// maxDelta is the largest delta-seconds value kept: RFC 9111 section 1.2.2
// says a larger value is to be taken as 2147483648 (2^31).
const maxDelta = 1 << 31

// Directives is a parsed Cache-Control field (RFC 9111 section 5.2), from a
// request or a response. Delta-seconds directives hold -1 when absent.
// Unknown directives are ignored, as section 5.2.3 requires. The zero value is
// not "nothing set" (its deltas are 0): use ParseCacheControl or NoDirectives.
type Directives struct {
	MaxAge               int64 // max-age; -1 if absent
	SMaxAge              int64 // s-maxage; -1 if absent
	MaxStale             int64 // max-stale=N; -1 if absent (see MaxStaleAny)
	MinFresh             int64 // min-fresh; -1 if absent
	StaleWhileRevalidate int64 // stale-while-revalidate (RFC 5861); -1 if absent
	StaleIfError         int64 // stale-if-error (RFC 5861); -1 if absent

	MaxStaleAny     bool // max-stale without a value: any staleness is accepted
	NoStore         bool
	NoCache         bool // also set by a qualified no-cache="field"
	Private         bool // also set by a qualified private="field"
	Public          bool
	MustRevalidate  bool
	ProxyRevalidate bool
	MustUnderstand  bool
	OnlyIfCached    bool
	Immutable       bool
	NoTransform     bool
}

// NoDirectives returns Directives with every delta absent and no flag set.
func NoDirectives() Directives {
	return Directives{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}
}

// ParseCacheControl parses the Cache-Control field lines of a message, as
// one comma-separated list (RFC 9110 section 5.3). It never fails: what it
// cannot understand it ignores, except that a delta-seconds directive with an
// invalid value, or given twice with different values, is taken as 0, so
// that a malformed freshness directive can only make a response stale
// (RFC 9111 section 4.2.1 and 5.2).
func ParseCacheControl(lines []string) Directives {
	d := NoDirectives()
	for _, line := range lines {
		for len(line) > 0 {
			var name, value string
			var hasValue bool
			name, value, hasValue, line = nextDirective(line)
			if name == "" {
				continue
			}
			d.set(strings.ToLower(name), value, hasValue)
		}
	}
	return d
}

// nextDirective splits the first directive off s, honouring quoted strings
// (a comma inside quotes does not end the directive).
func nextDirective(s string) (name, value string, hasValue bool, rest string) {
	s = strings.TrimLeft(s, " \t,")
	i := 0
	for i < len(s) && s[i] != '=' && s[i] != ',' {
		i++
	}
	name = strings.TrimRight(s[:i], " \t")
	if i == len(s) || s[i] == ',' {
		return name, "", false, s[i:]
	}
	s = s[i+1:]
	if len(s) > 0 && s[0] == '"' {
		var b strings.Builder
		j := 1
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				j++
			}
			b.WriteByte(s[j])
		}
		rest = s[min(j+1, len(s)):]
		// Anything between the closing quote and the next comma is junk.
		if k := strings.IndexByte(rest, ','); k >= 0 {
			rest = rest[k:]
		} else {
			rest = ""
		}
		return name, b.String(), true, rest
	}
	j := strings.IndexByte(s, ',')
	if j < 0 {
		j = len(s)
	}
	return name, strings.TrimRight(s[:j], " \t"), true, s[j:]
}

func (d *Directives) set(name, value string, hasValue bool) {
	switch name {
	case "max-age":
		d.MaxAge = mergeDelta(d.MaxAge, value, hasValue)
	case "s-maxage":
		d.SMaxAge = mergeDelta(d.SMaxAge, value, hasValue)
	case "min-fresh":
		d.MinFresh = mergeDelta(d.MinFresh, value, hasValue)
	case "stale-while-revalidate":
		d.StaleWhileRevalidate = mergeDelta(d.StaleWhileRevalidate, value, hasValue)
	case "stale-if-error":
		d.StaleIfError = mergeDelta(d.StaleIfError, value, hasValue)
	case "max-stale":
		if !hasValue {
			d.MaxStaleAny = true
		} else {
			d.MaxStale = mergeDelta(d.MaxStale, value, true)
		}
	case "no-store":
		d.NoStore = true
	case "no-cache":
		d.NoCache = true
	case "private":
		d.Private = true
	case "public":
		d.Public = true
	case "must-revalidate":
		d.MustRevalidate = true
	case "proxy-revalidate":
		d.ProxyRevalidate = true
	case "must-understand":
		d.MustUnderstand = true
	case "only-if-cached":
		d.OnlyIfCached = true
	case "immutable":
		d.Immutable = true
	case "no-transform":
		d.NoTransform = true
	}
}

// mergeDelta folds one more occurrence of a delta-seconds directive into
// the value seen so far: invalid or conflicting values yield 0.
func mergeDelta(prev int64, value string, hasValue bool) int64 {
	v, ok := parseDelta(value)
	if !hasValue || !ok {
		return 0
	}
	if prev >= 0 && prev != v {
		return 0
	}
	return v
}

// parseDelta parses delta-seconds: one or more ASCII digits, clamped to 2^31.
func parseDelta(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if v < maxDelta {
			v = v*10 + int64(c-'0')
		}
	}
	return min(v, maxDelta), true
}

// String formats d as a Cache-Control field value, directives in a fixed
// order; absent deltas and false flags are left out.
func (d Directives) String() string {
	var b []byte
	flag := func(on bool, name string) {
		if on {
			b = appendSep(b)
			b = append(b, name...)
		}
	}
	delta := func(v int64, name string) {
		if v >= 0 {
			b = appendSep(b)
			b = append(b, name...)
			b = append(b, '=')
			b = strconv.AppendInt(b, v, 10)
		}
	}
	flag(d.Public, "public")
	flag(d.Private, "private")
	flag(d.NoStore, "no-store")
	flag(d.NoCache, "no-cache")
	delta(d.MaxAge, "max-age")
	delta(d.SMaxAge, "s-maxage")
	flag(d.MustRevalidate, "must-revalidate")
	flag(d.ProxyRevalidate, "proxy-revalidate")
	flag(d.MustUnderstand, "must-understand")
	flag(d.Immutable, "immutable")
	flag(d.NoTransform, "no-transform")
	delta(d.StaleWhileRevalidate, "stale-while-revalidate")
	delta(d.StaleIfError, "stale-if-error")
	flag(d.MaxStaleAny, "max-stale")
	if !d.MaxStaleAny {
		delta(d.MaxStale, "max-stale")
	}
	delta(d.MinFresh, "min-fresh")
	flag(d.OnlyIfCached, "only-if-cached")
	return string(b)
}

func appendSep(b []byte) []byte {
	if len(b) > 0 {
		b = append(b, ", "...)
	}
	return b
}
