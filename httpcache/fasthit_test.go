package httpcache

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// hitRequest builds the HitRequest a proxy would pass for method and
// rawURL with the given fields (name, value pairs).
func hitRequest(t *testing.T, method, rawURL string, hdr ...string) *HitRequest {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	r := &HitRequest{Method: []byte(method), Host: []byte(u.Host), Target: []byte(u.RequestURI())}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Fields = append(r.Fields, HitField{Name: []byte(hdr[i]), Value: []byte(hdr[i+1])})
	}
	return r
}

// TestAppendHitMatchesRoundTrip stores a response through RoundTrip, then
// asks AppendHit and RoundTrip the same request: AppendHit must either
// decline or answer exactly what RoundTrip answers (status, fields, body).
func TestAppendHitMatchesRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		origin  []string // response fields
		status  int      // response status; 200 if zero
		path    string   // default /p
		store   []string // request fields of the storing request
		method  string   // of the second request; GET if empty
		hdr     []string // request fields of the second request
		host    string   // Host of the second request, if not the URL's
		advance time.Duration
		wantHit bool
	}{
		{name: "fresh", origin: []string{"Cache-Control", "max-age=60", "X-A", "1", "X-A", "2"}, wantHit: true},
		{name: "fresh after a while", origin: []string{"Cache-Control", "max-age=60"}, advance: 30 * time.Second, wantHit: true},
		{name: "head", origin: []string{"Cache-Control", "max-age=60"}, method: "HEAD", wantHit: true},
		{name: "upper-case host", origin: []string{"Cache-Control", "max-age=60"}, host: "LOCALHOST", wantHit: true},
		{name: "escaped target", origin: []string{"Cache-Control", "max-age=60"}, path: "/a%20b/%7e;x?q=%zz&r=(1)", wantHit: true},
		{name: "204", origin: []string{"Cache-Control", "max-age=60"}, status: 204, wantHit: true},
		{name: "404", origin: []string{"Cache-Control", "max-age=60"}, status: 404, wantHit: true},
		{name: "stale", origin: []string{"Cache-Control", "max-age=60"}, advance: 61 * time.Second},
		{name: "stale-while-revalidate", origin: []string{"Cache-Control", "max-age=1, stale-while-revalidate=60"}, advance: 2 * time.Second},
		{name: "response no-cache", origin: []string{"Cache-Control", "max-age=60, no-cache", "Etag", `"a"`}},
		{name: "request no-cache", origin: []string{"Cache-Control", "max-age=60"}, hdr: []string{"Cache-Control", "no-cache"}},
		{name: "request max-age", origin: []string{"Cache-Control", "max-age=60"}, hdr: []string{"cache-control", "max-age=100"}},
		{name: "pragma", origin: []string{"Cache-Control", "max-age=60"}, hdr: []string{"Pragma", "no-cache"}},
		{name: "if-none-match", origin: []string{"Cache-Control", "max-age=60", "Etag", `"a"`}, hdr: []string{"If-None-Match", `"a"`}},
		{name: "if-modified-since", origin: []string{"Cache-Control", "max-age=60"}, hdr: []string{"If-Modified-Since", "Fri, 02 Jan 2026 03:04:05 GMT"}},
		{name: "range", origin: []string{"Cache-Control", "max-age=60"}, hdr: []string{"Range", "bytes=0-1"}},
		{name: "authorization", origin: []string{"Cache-Control", "public, max-age=60"}, hdr: []string{"Authorization", "Basic eDp5"}},
		{name: "post", origin: []string{"Cache-Control", "max-age=60"}, method: "POST"},
		{name: "vary match", origin: []string{"Cache-Control", "max-age=60", "Vary", "Accept-Encoding"},
			store: []string{"Accept-Encoding", "gzip, br"}, hdr: []string{"accept-encoding", " gzip ,br"}, wantHit: true},
		{name: "vary split lines", origin: []string{"Cache-Control", "max-age=60", "Vary", "Accept-Encoding, Cookie"},
			store: []string{"Accept-Encoding", "gzip", "Accept-Encoding", "br", "Cookie", "u=1"},
			hdr:   []string{"Cookie", "u=1", "Accept-Encoding", "gzip", "ACCEPT-ENCODING", "br"}, wantHit: true},
		{name: "vary other value", origin: []string{"Cache-Control", "max-age=60", "Vary", "Cookie"},
			store: []string{"Cookie", "u=1"}, hdr: []string{"Cookie", "u=2"}},
		{name: "vary absent", origin: []string{"Cache-Control", "max-age=60", "Vary", "Cookie"}, store: []string{"Cookie", "u=1"}},
		{name: "vary empty is not absent", origin: []string{"Cache-Control", "max-age=60", "Vary", "Cookie"}, hdr: []string{"Cookie", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newTestClock()
			o := newOrigin(t, clk, func(n int64, w http.ResponseWriter, r *http.Request) {
				for i := 0; i+1 < len(tc.origin); i += 2 {
					w.Header().Add(tc.origin[i], tc.origin[i+1])
				}
				if tc.status != 0 {
					w.WriteHeader(tc.status)
				}
				fmt.Fprintf(w, "n=%d", n)
			})
			s, client := newTestCache(t, o, nil)
			path := tc.path
			if path == "" {
				path = "/p"
			}
			u := strings.Replace(o.srv.URL, "127.0.0.1", "localhost", 1) + path
			get(t, client, "GET", u, tc.store...)
			clk.Advance(tc.advance)
			method := tc.method
			if method == "" {
				method = "GET"
			}
			hr := hitRequest(t, method, u, tc.hdr...)
			if tc.host != "" {
				_, port, _ := strings.Cut(string(hr.Host), ":")
				hr.Host = []byte(tc.host + ":" + port)
			}
			dst := []byte("prefix")
			head, body, ok := s.AppendHit(dst, hr)
			if ok != tc.wantHit {
				t.Fatalf("AppendHit ok = %v, want %v", ok, tc.wantHit)
			}
			if !ok {
				if string(head) != "prefix" || body != nil {
					t.Errorf("declined: got head %q body %q, want dst unchanged and no body", head, body)
				}
				return
			}
			if !bytes.HasPrefix(head, dst) {
				t.Fatalf("head %q does not extend dst", head)
			}
			wire := append(slices.Clone(head[len(dst):]), "\r\n"...)
			wire = append(wire, body...)
			fast, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(wire)), &http.Request{Method: method})
			if err != nil {
				t.Fatalf("fast path wrote an unreadable response %q: %v", wire, err)
			}
			fastBody, _ := io.ReadAll(fast.Body)
			slow, slowBody := get(t, client, method, u, tc.hdr...)
			if fast.StatusCode != slow.StatusCode || string(fastBody) != slowBody {
				t.Errorf("fast path: %d %q, RoundTrip: %d %q", fast.StatusCode, fastBody, slow.StatusCode, slowBody)
			}
			if fast.ContentLength != slow.ContentLength {
				t.Errorf("Content-Length: fast %d, RoundTrip %d", fast.ContentLength, slow.ContentLength)
			}
			for _, h := range []http.Header{fast.Header, slow.Header} {
				delete(h, "Content-Length")
			}
			if fmt.Sprint(fast.Header) != fmt.Sprint(slow.Header) {
				t.Errorf("fields:\nfast      %v\nRoundTrip %v", fast.Header, slow.Header)
			}
			if got := s.Stats().Hits; got != 2 {
				t.Errorf("Stats().Hits = %d, want 2 (one fast, one RoundTrip)", got)
			}
		})
	}
}

// FuzzHitKey checks that every target and host AppendHit keys verbatim
// gives the key RoundTrip computes for the request a proxy builds with
// url.ParseRequestURI, so the fast path can never answer another URL's
// entry, or a target the slow path would refuse.
func FuzzHitKey(f *testing.F) {
	for _, s := range []string{"/", "/a/b?c=d", "/a%20b", "/%zz", "/a?%zz", "//x", "/a#b", "*", "/a?", "/a%2Fb", "/%41"} {
		f.Add(s, "Example.COM:80")
	}
	f.Fuzz(func(t *testing.T, target, host string) {
		key, ok := appendHitKey(nil, []byte(host), []byte(target))
		if !ok {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("fast path keys %q, which url.ParseRequestURI refuses: %v", target, err)
		}
		u.Scheme, u.Host = "http", host
		want := primaryKey(&http.Request{URL: u, Host: host})
		if string(key) != want {
			t.Fatalf("target %q host %q: fast key %q, RoundTrip key %q", target, host, key, want)
		}
	})
}

// FuzzVariantKeyFields checks that parsed fields select the same Vary
// variant as the http.Header a proxy builds from them.
func FuzzVariantKeyFields(f *testing.F) {
	f.Add("accept-encoding", "gzip, br", " gzip", "Accept-Encoding")
	f.Add("Cookie", "", "a=1", "cookie")
	f.Fuzz(func(t *testing.T, name, v1, v2, varyName string) {
		fields := []HitField{{[]byte(name), []byte(v1)}, {[]byte("X-Other"), []byte(v2)}, {[]byte(name), []byte(v2)}}
		h := http.Header{}
		for _, f := range fields {
			k := textproto.CanonicalMIMEHeaderKey(string(f.Name))
			h[k] = append(h[k], string(f.Value))
		}
		names := varyNames(http.Header{"Vary": {varyName}})
		got, ok := variantKeyFields([]byte("http://h/p"), names, fields)
		if !ok {
			return
		}
		if want := variantKey("http://h/p", names, h); got != want {
			t.Fatalf("fields %q vary %q: got key %q, want %q", fields, names, got, want)
		}
	})
}

// BenchmarkAppendHit is the fast path's own cost against RoundTrip's for
// the same stored response and request, in one run (b.N hits each).
func BenchmarkAppendHit(b *testing.B) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("x", 2048))
	}))
	defer o.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	s, err := NewShared(Config{Next: tr})
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, o.URL+"/hit", nil)
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	res, err := s.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	b.Run("RoundTrip", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res, _ := s.RoundTrip(req)
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
	b.Run("AppendHit", func(b *testing.B) {
		hr := &HitRequest{Method: []byte("GET"), Host: []byte(req.URL.Host), Target: []byte("/hit"),
			Fields: []HitField{{[]byte("User-Agent"), []byte("bench")}, {[]byte("Accept"), []byte("*/*")}}}
		buf := make([]byte, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			head, _, ok := s.AppendHit(buf[:0], hr)
			if !ok {
				b.Fatal("AppendHit declined a fresh hit")
			}
			buf = head
		}
	})
}

// A proxy that parses HTTP itself answers fresh hits with AppendHit and
// sends everything else through RoundTrip.
func ExampleShared_AppendHit() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "flight 42")
	}))
	defer origin.Close()
	cache, _ := NewShared(Config{Next: http.DefaultTransport})
	u, _ := url.Parse(origin.URL + "/flights/42")
	r := &HitRequest{Method: []byte("GET"), Host: []byte(u.Host), Target: []byte(u.RequestURI())}
	if _, _, ok := cache.AppendHit(nil, r); !ok {
		fmt.Println("miss: through RoundTrip")
		res, _ := cache.RoundTrip(&http.Request{Method: "GET", URL: u, Host: u.Host, Header: http.Header{}})
		io.Copy(io.Discard, res.Body) // stored once read to the end
		res.Body.Close()
	}
	head, body, ok := cache.AppendHit(nil, r)
	line, _, _ := strings.Cut(string(head), "\r\n")
	fmt.Println(ok, line, string(body), strings.Contains(string(head), "Cache-Status: scaleout; hit\r\n"))
	// Output:
	// miss: through RoundTrip
	// true HTTP/1.1 200 OK flight 42 true
}
