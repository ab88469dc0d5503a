package balancer

import (
	"bytes"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func TestStickyCodecRoundTrip(t *testing.T) {
	t.Parallel()
	c, err := newStickyCodec(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	tok := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	now := time.Unix(1_800_000_000, 0)
	v := c.encode(nil, tok, now.Add(time.Hour))
	if len(v) != stickyEncLen {
		t.Fatalf("encoded length %d, want %d", len(v), stickyEncLen)
	}
	got, _, ok := c.decode(v, now)
	if !ok || got != tok {
		t.Fatalf("decode = %v, %v; want %v, true", got, ok, tok)
	}
	if _, _, ok := c.decode(v, now.Add(2*time.Hour)); ok {
		t.Errorf("expired cookie accepted")
	}
	other, _ := newStickyCodec([]byte("another secret, also 32 bytes!!!"))
	if _, _, ok := other.decode(v, now); ok {
		t.Errorf("cookie signed with another key accepted")
	}
	for i := range v {
		bad := bytes.Clone(v)
		bad[i] ^= 1
		if _, _, ok := c.decode(bad, now); ok {
			t.Errorf("cookie with byte %d flipped accepted", i)
		}
	}
	if _, _, ok := c.decode(v[:len(v)-1], now); ok {
		t.Errorf("truncated cookie accepted")
	}
}

func FuzzStickyDecode(f *testing.F) {
	c, _ := newStickyCodec(testSecret)
	now := time.Unix(1_800_000_000, 0)
	f.Add(c.encode(nil, [8]byte{9}, now.Add(time.Hour)))
	f.Add([]byte(""))
	f.Add([]byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
	f.Fuzz(func(t *testing.T, v []byte) {
		tok, exp, ok := c.decode(v, now)
		if !ok {
			return
		}
		// Anything accepted must be exactly what the codec would issue.
		if again := c.encode(nil, tok, exp); !bytes.Equal(again, v) {
			t.Fatalf("accepted %q, which re-encodes as %q", v, again)
		}
	})
}

// stickyClient is an HTTP client with a cookie jar.
func stickyClient(t testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := newClient()
	c.Jar = jar
	return c
}

func TestStickyPinsAndRepins(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	repinned := map[string]string{}
	handler := func(id string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if from := r.Header.Get("Scaleout-Repinned-From"); from != "" {
				mu.Lock()
				repinned[id] = from
				mu.Unlock()
			}
			w.Write([]byte(id))
		}
	}
	a, bm, c := newMember(t, "a", handler("a")), newMember(t, "b", handler("b")), newMember(t, "c", handler("c"))
	rr, _ := NewSelector(PolicyConfig{Name: "round-robin"})
	p := startBalancer(t, Config{Sticky: true, Secret: testSecret, Selector: rr}, a.URL, bm.URL, c.URL)
	client := stickyClient(t)

	_, first := get(t, client, p.url+"/")
	for i := 0; i < 20; i++ {
		if _, body := get(t, client, p.url+"/"); body != first {
			t.Fatalf("request %d went to %s, want pinned %s", i, body, first)
		}
	}
	// Kill the pinned member: the session moves, and the new member is told.
	pinned := map[string]*member{"a": a, "b": bm, "c": c}[first]
	pinnedID := map[string]string{"a": "m0", "b": "m1", "c": "m2"}[first]
	pinned.Close()
	resp, second := get(t, client, p.url+"/")
	if resp.StatusCode != 200 || second == first {
		t.Fatalf("after the pinned member died: got %d from %q, want 200 from another", resp.StatusCode, second)
	}
	if resp.Header.Get("Set-Cookie") == "" {
		t.Errorf("no new sticky cookie after re-pinning")
	}
	mu.Lock()
	from := repinned[second]
	mu.Unlock()
	if from != pinnedID {
		t.Errorf("new member %s saw Scaleout-Repinned-From %q, want %q", second, from, pinnedID)
	}
	for i := 0; i < 10; i++ {
		if _, body := get(t, client, p.url+"/"); body != second {
			t.Fatalf("after re-pinning, request %d went to %s, want %s", i, body, second)
		}
	}
}

func TestStickyIgnoresForgedCookies(t *testing.T) {
	t.Parallel()
	a, bm := newMember(t, "a", nil), newMember(t, "b", nil)
	p := startBalancer(t, Config{Sticky: true, Secret: testSecret}, a.URL, bm.URL)
	other, _ := newStickyCodec([]byte("not the balancer's secret at all"))
	forged := other.encode(nil, [8]byte{1}, time.Now().Add(time.Hour))
	for _, v := range []string{"garbage", string(forged), strings.Repeat("A", stickyEncLen), ""} {
		req, _ := http.NewRequest("GET", p.url+"/", nil)
		req.Header.Set("Cookie", "scaleout_sticky="+v+"; other=1")
		resp, err := newClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("cookie %q: status %d, want 200", v, resp.StatusCode)
		}
		if !strings.HasPrefix(resp.Header.Get("Set-Cookie"), "scaleout_sticky=") {
			t.Errorf("cookie %q: not re-issued (Set-Cookie %q)", v, resp.Header.Get("Set-Cookie"))
		}
	}
}

func TestStickySharedAcrossBalancers(t *testing.T) {
	t.Parallel()
	a, bm := newMember(t, "a", nil), newMember(t, "b", nil)
	p1 := startBalancer(t, Config{Sticky: true, Secret: testSecret}, a.URL, bm.URL)
	p2 := startBalancer(t, Config{Sticky: true, Secret: testSecret}, a.URL, bm.URL)
	resp, first := get(t, newClient(), p1.url+"/")
	cookie := resp.Header.Get("Set-Cookie")
	name, _, _ := strings.Cut(cookie, ";")
	for i := 0; i < 10; i++ {
		req, _ := http.NewRequest("GET", p2.url+"/", nil)
		req.Header.Set("Cookie", name)
		resp, err := newClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Member"); "hello from "+got != first {
			t.Fatalf("second balancer sent the session to %s, want the member behind %q", got, first)
		}
	}
}
