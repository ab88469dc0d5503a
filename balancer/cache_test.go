package balancer

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"scaleout/httpcache"
)

func TestSharedCacheInFront(t *testing.T) {
	t.Parallel()
	var version atomic.Int64
	m := newMember(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "POST":
			version.Add(1)
			w.Header().Set("Location", "/flights/42")
			w.WriteHeader(http.StatusSeeOther)
		case r.URL.Path == "/private":
			w.Header().Set("Cache-Control", "private, max-age=60")
			fmt.Fprintf(w, "user page %d", version.Load())
		default:
			w.Header().Set("Cache-Control", "public, max-age=60")
			fmt.Fprintf(w, "flight v%d", version.Load())
		}
	})
	cfg := Config{NewCache: func(pool http.RoundTripper) (Cache, error) {
		return httpcache.NewShared(httpcache.Config{Next: pool, MaxBytes: 1 << 20})
	}}
	p := startBalancer(t, cfg, m.URL)
	client := newClient()
	for i := 0; i < 5; i++ {
		resp, body := get(t, client, p.url+"/flights/42")
		if body != "flight v0" {
			t.Fatalf("got %q, want %q", body, "flight v0")
		}
		if i > 0 && !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			t.Errorf("request %d: Cache-Status %q, want a hit", i, resp.Header.Get("Cache-Status"))
		}
	}
	if n := m.count.Load(); n != 1 {
		t.Errorf("member served %d of 5 cacheable GETs, want 1", n)
	}
	for i := 0; i < 3; i++ {
		get(t, client, p.url+"/private")
	}
	if n := m.count.Load(); n != 4 {
		t.Errorf("private page: member count %d, want 4 (never served from the shared cache)", n)
	}
	// A POST to the resource invalidates it.
	req, _ := http.NewRequest("POST", p.url+"/flights/42", strings.NewReader("x"))
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, body := get(t, client, p.url+"/flights/42"); body != "flight v1" {
		t.Errorf("after POST: got %q, want %q (stale entry not invalidated)", body, "flight v1")
	}
}
