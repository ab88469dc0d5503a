package httpcache

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzCacheControl: parsing never panics, keeps deltas in range, and is a
// fixed point through String (what the cache writes it reads back alike).
func FuzzCacheControl(f *testing.F) {
	for _, s := range []string{
		"max-age=60", `max-age="3600"`, "public, s-maxage=10, must-revalidate",
		`no-cache="Set-Cookie, X-Foo", max-age=5`, "max-age=1, max-age=2", "max-stale",
		"max-stale=99999999999999999999", "stale-while-revalidate=30, stale-if-error=60",
		`private="a\"b", no-store`, "=,,=", "max-age = 5", "MAX-AGE=7",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := ParseCacheControl(strings.Split(s, "\n"))
		for _, v := range []int64{d.MaxAge, d.SMaxAge, d.MaxStale, d.MinFresh, d.StaleWhileRevalidate, d.StaleIfError} {
			if v < -1 || v > maxDelta {
				t.Fatalf("%q: delta %d out of range", s, v)
			}
		}
		out := d.String()
		if again := ParseCacheControl([]string{out}); again != d {
			t.Fatalf("%q: parsed %+v, formatted %q, reparsed %+v", s, d, out, again)
		}
	})
}

// FuzzETagList: list parsing never panics, and every tag it returns formats
// to a value ParseETag accepts and returns unchanged.
func FuzzETagList(f *testing.F) {
	for _, s := range []string{`"a", W/"b"`, "*", `"x`, `W/`, `"a" "b"`, `,,"c",`, "\"\x80\"", `W/"", *`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tags, _, _ := ParseETagList([]string{s})
		for _, tag := range tags {
			back, err := ParseETag(tag.String())
			if err != nil || back != tag {
				t.Fatalf("%q: tag %+v formats to %q, reparsed %+v, %v", s, tag, tag.String(), back, err)
			}
			if !tag.WeakMatch(back) || (!tag.Weak && !tag.StrongMatch(back)) {
				t.Fatalf("%q: tag %+v does not match itself", s, tag)
			}
		}
		// Whatever a client sends, evaluating it must not panic.
		r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		r.Header.Set("If-None-Match", s)
		r.Header.Set("If-Match", s)
		r.Header.Set("If-Modified-Since", s)
		EvaluatePreconditions(r, Validators{ETag: `"v"`})
	})
}

// FuzzHTTPDate: parsing never panics, and an accepted date formats back to
// an IMF-fixdate that parses to the same instant.
func FuzzHTTPDate(f *testing.F) {
	for _, s := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
		"Sun, 06 Nov 1994 08:49:37 PST", "0", "", "Mon, 32 Jan 2026 00:00:00 GMT",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseHTTPDate(s)
		if !ok {
			return
		}
		back, ok := ParseHTTPDate(d.Format(http.TimeFormat))
		if !ok || !back.Equal(d) {
			t.Fatalf("%q: parsed %v, reparsed %v (%v)", s, d, back, ok)
		}
	})
}

// FuzzAgeAndVary: response fields that reach the cache's key and clock.
func FuzzAgeAndVary(f *testing.F) {
	f.Add("7200", "Accept-Encoding, Cookie")
	f.Add("0, 0", "*")
	f.Add("-1", ",,")
	f.Fuzz(func(t *testing.T, age, vary string) {
		h := http.Header{"Age": {age}, "Vary": {vary}}
		if a := parseAge(h); a < 0 {
			t.Fatalf("Age %q: negative %v", age, a)
		}
		names := varyNames(h)
		req := http.Header{"Accept-Encoding": {vary}}
		if variantKey("k", names, req) != variantKey("k", names, req.Clone()) {
			t.Fatalf("Vary %q: unstable key", vary)
		}
	})
}
