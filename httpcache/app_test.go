package httpcache

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPolicyString(t *testing.T) {
	t.Parallel()
	cases := []struct {
		p    Policy
		want string
	}{
		{Policy{}, ""},
		{Policy{Public: true, MaxAge: time.Hour, Immutable: true}, "public, max-age=3600, immutable"},
		{Policy{Private: true, NoCache: true}, "private, no-cache"},
		{Policy{NoStore: true}, "no-store"},
		{Policy{MaxAge: -1, SMaxAge: 90 * time.Second, StaleWhileRevalidate: 30 * time.Second, StaleIfError: time.Minute}, "max-age=0, s-maxage=90, stale-while-revalidate=30, stale-if-error=60"},
		{Policy{MaxAge: time.Minute, MustRevalidate: true}, "max-age=60, must-revalidate"},
	}
	for _, tc := range cases {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.p, got, tc.want)
		}
		// What the app writes, the cache must read back the same way.
		if back := ParseCacheControl([]string{tc.want}).String(); tc.want != "" && back != tc.want {
			t.Errorf("round trip of %q: got %q", tc.want, back)
		}
	}
	for _, bad := range []Policy{{Public: true, Private: true}, {NoStore: true, MaxAge: time.Second}, {Private: true, SMaxAge: time.Second}} {
		if _, err := bad.Middleware(http.NotFoundHandler()); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: got %v, want ErrBadConfig", bad, err)
		}
	}
}

func TestEvaluatePreconditions(t *testing.T) {
	t.Parallel()
	lm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	before, after := lm.Add(-time.Hour).Format(http.TimeFormat), lm.Add(time.Hour).Format(http.TimeFormat)
	cur := Validators{ETag: `"v2"`, LastModified: lm}
	cases := []struct {
		name   string
		method string
		hdr    []string
		v      Validators
		want   Precondition
	}{
		{"none", "GET", nil, cur, Proceed},
		{"inm match", "GET", []string{"If-None-Match", `"v1", "v2"`}, cur, NotModified},
		{"inm weak match", "GET", []string{"If-None-Match", `W/"v2"`}, cur, NotModified},
		{"inm star", "HEAD", []string{"If-None-Match", "*"}, cur, NotModified},
		{"inm no match", "GET", []string{"If-None-Match", `"v1"`}, cur, Proceed},
		{"inm beats ims", "GET", []string{"If-None-Match", `"v1"`, "If-Modified-Since", after}, cur, Proceed},
		{"ims not modified", "GET", []string{"If-Modified-Since", after}, cur, NotModified},
		{"ims modified", "GET", []string{"If-Modified-Since", before}, cur, Proceed},
		{"ims bad date ignored", "GET", []string{"If-Modified-Since", "yesterday"}, cur, Proceed},
		{"ims ignored for post", "POST", []string{"If-Modified-Since", after}, cur, Proceed},
		{"inm match on put fails", "PUT", []string{"If-None-Match", `"v2"`}, cur, Failed},
		{"create only: inm star, missing", "PUT", []string{"If-None-Match", "*"}, Validators{Missing: true}, Proceed},
		{"create only: inm star, exists", "PUT", []string{"If-None-Match", "*"}, cur, Failed},
		{"if-match ok", "PUT", []string{"If-Match", `"v2"`}, cur, Proceed},
		{"if-match stale", "PUT", []string{"If-Match", `"v1"`}, cur, Failed},
		{"if-match weak never matches", "PUT", []string{"If-Match", `W/"v2"`}, cur, Failed},
		{"if-match star missing", "PUT", []string{"If-Match", "*"}, Validators{Missing: true}, Failed},
		{"if-match beats ius", "PUT", []string{"If-Match", `"v2"`, "If-Unmodified-Since", before}, cur, Proceed},
		{"ius modified since", "PUT", []string{"If-Unmodified-Since", before}, cur, Failed},
		{"ius unmodified", "DELETE", []string{"If-Unmodified-Since", after}, cur, Proceed},
		{"if-match garbage", "PUT", []string{"If-Match", `v2`}, cur, Failed},
		{"ius without last-modified ignored", "PUT", []string{"If-Unmodified-Since", before}, Validators{ETag: `"v2"`}, Proceed},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(tc.method, "/x", nil)
		for i := 0; i+1 < len(tc.hdr); i += 2 {
			r.Header.Add(tc.hdr[i], tc.hdr[i+1])
		}
		if got := EvaluatePreconditions(r, tc.v); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}

// The ETagger and CheckPreconditions on a real server through a real client.
func TestETaggerOverHTTP(t *testing.T) {
	t.Parallel()
	version := `"row-7"`
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, strings.Repeat("z", 5000)) })
	mux.HandleFunc("/versioned", func(w http.ResponseWriter, r *http.Request) {
		if CheckPreconditions(w, r, Validators{ETag: version}) {
			return
		}
		fmt.Fprint(w, "expensive")
	})
	mux.HandleFunc("/missing", http.NotFound)
	et, err := NewETagger(ETagConfig{Next: mux, MaxBuffer: 1024})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(et)
	defer srv.Close()
	c := srv.Client()

	res, body := get(t, c, "GET", srv.URL+"/small")
	tag := res.Header.Get("Etag")
	if body != "hello" || tag != ContentETag([]byte("hello")) {
		t.Fatalf("small: got %q with ETag %q", body, tag)
	}
	res, body = get(t, c, "GET", srv.URL+"/small", "If-None-Match", tag)
	if res.StatusCode != 304 || body != "" {
		t.Errorf("small conditional: got %d %q, want 304 and no body", res.StatusCode, body)
	}
	res, body = get(t, c, "GET", srv.URL+"/big")
	if res.Header.Get("Etag") != "" || len(body) != 5000 {
		t.Errorf("big: got ETag %q and %d bytes, want none and 5000", res.Header.Get("Etag"), len(body))
	}
	res, _ = get(t, c, "GET", srv.URL+"/versioned", "If-None-Match", version)
	if res.StatusCode != 304 || res.Header.Get("Etag") != version {
		t.Errorf("versioned: got %d ETag %q, want 304 %s", res.StatusCode, res.Header.Get("Etag"), version)
	}
	res, _ = get(t, c, "PUT", srv.URL+"/versioned", "If-Match", `"row-6"`)
	if res.StatusCode != 412 {
		t.Errorf("stale update: got %d, want 412", res.StatusCode)
	}
	res, _ = get(t, c, "GET", srv.URL+"/missing", "If-None-Match", "*")
	if res.StatusCode != 404 || res.Header.Get("Etag") != "" {
		t.Errorf("404: got %d ETag %q, want 404 untagged", res.StatusCode, res.Header.Get("Etag"))
	}
}

// An app server behind the shared cache: the two halves working together.
func TestAppBehindSharedCache(t *testing.T) {
	t.Parallel()
	clk := newTestClock()
	var calls atomic.Int64
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Date", clk.Now().Format(http.TimeFormat))
		fmt.Fprint(w, "flights")
	})
	et, _ := NewETagger(ETagConfig{Next: app})
	h, err := Policy{Public: true, MaxAge: time.Minute, NoCache: false}.Middleware(et)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	next := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		r.URL.Host = srv.Listener.Addr().String() // the balancer's forwarding, in miniature
		return tr.RoundTrip(r)
	})
	s, err := NewShared(Config{Next: next, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(s.Handler())
	defer front.Close()
	fc := front.Client()
	get(t, fc, "GET", front.URL+"/f")
	clk.Advance(2 * time.Minute) // stale: revalidated with the ETag
	res, body := get(t, fc, "GET", front.URL+"/f")
	if body != "flights" || !strings.Contains(res.Header.Get("Cache-Status"), "fwd-status=304") {
		t.Errorf("revalidation: got %q, Cache-Status %q", body, res.Header.Get("Cache-Status"))
	}
	res, _ = get(t, fc, "GET", front.URL+"/f", "If-None-Match", ContentETag([]byte("flights")))
	if res.StatusCode != 304 || calls.Load() != 2 {
		t.Errorf("client conditional: got %d after %d app calls, want 304 after 2", res.StatusCode, calls.Load())
	}
}

func TestETagHelpers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		got, want string
	}{
		{VersionETag("v42", false), `"v42"`},
		{VersionETag(`a b"c`, true), `W/"a_b_c"`},
		{VersionETag("é", false), `"__"`},
		{ContentETag([]byte("x")), ContentETag([]byte("x"))},
	}
	for i, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("case %d: got %s, want %s", i, tc.got, tc.want)
		}
		if _, err := ParseETag(tc.got); err != nil {
			t.Errorf("case %d: %s does not parse: %v", i, tc.got, err)
		}
	}
	if ContentETag([]byte("x")) == ContentETag([]byte("y")) {
		t.Errorf("different content, same tag")
	}
	for _, bad := range []string{``, `abc`, `"abc`, `W/abc`, `"a"b`, `"a"b"`} {
		if _, err := ParseETag(bad); !errors.Is(err, ErrBadETag) {
			t.Errorf("ParseETag(%q): got %v, want ErrBadETag", bad, err)
		}
	}
	h := http.Header{}
	Policy{Private: true, MaxAge: time.Minute, Vary: []string{"Cookie"}}.Apply(h)
	if h.Get("Cache-Control") != "private, max-age=60" || h.Get("Vary") != "Cookie" {
		t.Errorf("Apply: got %v", h)
	}
}
