package balancer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"scaleout/httpcache"
)

// rawHit sends one raw request on a new connection and reads one
// response to it.
func rawHit(t *testing.T, addr, req, method string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response to %q: %v", req, err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the body of the response to %q: %v", req, err)
	}
	return res, string(body)
}

// TestCacheFastPath sends hits through the balancer's fast path (cached
// responses answered from the parsed request) and checks what clients get:
// the stored body and fields, HEAD without a body, the client's own
// connection handling, Vary keeping users apart, and declined requests
// (conditional, no-cache) answered by the full path.
func TestCacheFastPath(t *testing.T) {
	t.Parallel()
	m := newMember(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Etag", `"v1"`)
		if r.URL.Path == "/user" {
			w.Header().Set("Vary", "Cookie")
			fmt.Fprintf(w, "page of %s", r.Header.Get("Cookie"))
			return
		}
		io.WriteString(w, "flight 42")
	})
	cfg := Config{NewCache: func(pool http.RoundTripper) (Cache, error) {
		return httpcache.NewShared(httpcache.Config{Next: pool, MaxBytes: 1 << 20})
	}}
	p := startBalancer(t, cfg, m.URL)
	addr := strings.TrimPrefix(p.url, "http://")
	get(t, newClient(), p.url+"/f") // store it
	cases := []struct {
		name, req, method string
		wantStatus        int
		wantBody, wantCS  string
		wantClose         bool
	}{
		{"get", "GET /f HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", "GET", 200, "flight 42", "hit", false},
		{"head", "HEAD /f HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", "HEAD", 200, "", "hit", false},
		{"close", "GET /f HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n", "GET", 200, "flight 42", "hit", true},
		{"http/1.0", "GET /f HTTP/1.0\r\nHost: " + addr + "\r\n\r\n", "GET", 200, "flight 42", "hit", true},
		{"if-none-match", "GET /f HTTP/1.1\r\nHost: " + addr + "\r\nIf-None-Match: \"v1\"\r\n\r\n", "GET", 304, "", "hit", false},
		{"no-cache", "GET /f HTTP/1.1\r\nHost: " + addr + "\r\nCache-Control: no-cache\r\n\r\n", "GET", 200, "flight 42", "fwd=", false},
	}
	for _, tc := range cases {
		res, body := rawHit(t, addr, tc.req, tc.method)
		if res.StatusCode != tc.wantStatus || body != tc.wantBody || !strings.Contains(res.Header.Get("Cache-Status"), tc.wantCS) {
			t.Errorf("%s: got %d %q Cache-Status %q, want %d %q with %q", tc.name, res.StatusCode, body, res.Header.Get("Cache-Status"), tc.wantStatus, tc.wantBody, tc.wantCS)
		}
		if res.Close != tc.wantClose {
			t.Errorf("%s: connection close %v, want %v", tc.name, res.Close, tc.wantClose)
		}
		if tc.method == "HEAD" && res.ContentLength != int64(len("flight 42")) {
			t.Errorf("%s: Content-Length %d, want %d", tc.name, res.ContentLength, len("flight 42"))
		}
	}
	// Vary: Cookie keeps users apart on the fast path too.
	for round := 0; round < 2; round++ {
		for _, user := range []string{"u=1", "u=2"} {
			res, body := rawHit(t, addr, "GET /user HTTP/1.1\r\nHost: "+addr+"\r\nCookie: "+user+"\r\n\r\n", "GET")
			if body != "page of "+user {
				t.Errorf("round %d, %s: got %q, want %q", round, user, body, "page of "+user)
			}
			if cs := res.Header.Get("Cache-Status"); round == 1 && !strings.Contains(cs, "hit") {
				t.Errorf("round %d, %s: Cache-Status %q, want a hit", round, user, cs)
			}
		}
	}
	if n := m.count.Load(); n != 4 {
		t.Errorf("member served %d requests, want 4 (/f, /f no-cache, /user twice)", n)
	}
}
