package balancer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testPool is a balancer serving on a loopback port in front of members.
type testPool struct {
	b    *Balancer
	addr string
	url  string
}

// startBalancer runs a balancer with cfg in front of the given member URLs
// until the test ends.
func startBalancer(t testing.TB, cfg Config, members ...string) *testPool {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for i, u := range members {
		m, err := NewBackend(fmt.Sprintf("m%d", i), u, 1)
		if err != nil {
			t.Fatalf("NewBackend: %v", err)
		}
		if err := b.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testPool{b: b, addr: ln.Addr().String(), url: "http://" + ln.Addr().String()}
}

// member is an httptest app server that counts what it serves.
type member struct {
	*httptest.Server
	id    string
	count atomic.Int64
}

func newMember(t testing.TB, id string, h http.HandlerFunc) *member {
	t.Helper()
	m := &member{id: id}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.count.Add(1)
		w.Header().Set("X-Member", id)
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, "hello from "+id)
	}))
	t.Cleanup(m.Close)
	return m
}

func newClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

func get(t testing.TB, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, string(body)
}

func TestForwardsRequestsAndHeaders(t *testing.T) {
	t.Parallel()
	var seen http.Header
	var mu sync.Mutex
	m := newMember(t, "a", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Header.Clone()
		mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "secret")
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
	})
	p := startBalancer(t, Config{}, m.URL)
	c := newClient()

	resp, body := get(t, c, p.url+"/path?q=1")
	if resp.StatusCode != 200 || body != "GET /path?q=1 " {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, "GET /path?q=1 ")
	}
	if resp.Header.Get("X-Hop") != "" {
		t.Errorf("hop-by-hop field named in Connection reached the client")
	}
	req, _ := http.NewRequest("POST", p.url+"/echo", strings.NewReader("payload"))
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Scaleout-Repinned-From", "spoofed")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "POST /echo payload" {
		t.Fatalf("got %q, want %q", b, "POST /echo payload")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, tc := range []struct{ name, want string }{
		{"X-Forwarded-For", "203.0.113.9, 127.0.0.1"},
		{"X-Forwarded-Proto", "http"},
		{"X-Forwarded-Host", p.addr},
		{"Forwarded", `for=127.0.0.1;host="` + p.addr + `";proto=http`},
		{"Keep-Alive", ""},
		{"Scaleout-Repinned-From", ""},
	} {
		if got := seen.Get(tc.name); got != tc.want {
			t.Errorf("member saw %s %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestNoMemberIs503(t *testing.T) {
	t.Parallel()
	p := startBalancer(t, Config{})
	resp, _ := get(t, newClient(), p.url+"/")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// rawExchange sends raw bytes to addr and returns what comes back until
// the connection closes or 5s pass.
func rawExchange(t testing.TB, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, raw)
	out, _ := io.ReadAll(c)
	return string(out)
}

func TestRefusesMalformedAndSmuggling(t *testing.T) {
	t.Parallel()
	m := newMember(t, "a", nil)
	p := startBalancer(t, Config{}, m.URL)
	cases := []struct {
		name, raw string
		status    string
	}{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"duplicate CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "400"},
		{"same duplicate CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", "400"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", "400"},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n", "400"},
		{"TE gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "501"},
		{"bad CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd", "400"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", "400"},
		{"bad request line", "GET /\r\n\r\n", "400"},
		{"bare CR", "GET / HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n", "400"},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ""},
	}
	for _, tc := range cases {
		out := rawExchange(t, p.addr, tc.raw)
		if tc.status != "" && !strings.HasPrefix(out, "HTTP/1.1 "+tc.status+" ") {
			t.Errorf("%s: got %q, want status %s", tc.name, firstLine(out), tc.status)
		}
		if tc.status == "" && strings.HasPrefix(out, "HTTP/1.1 200") {
			t.Errorf("%s: got %q, want a refusal", tc.name, firstLine(out))
		}
	}
	if n := m.count.Load(); n != 0 {
		t.Errorf("member saw %d of the refused requests, want 0", n)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

func TestOversizedHeaderIs431(t *testing.T) {
	t.Parallel()
	m := newMember(t, "a", nil)
	p := startBalancer(t, Config{MaxHeaderBytes: 4096}, m.URL)
	raw := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8000) + "\r\n\r\n"
	if out := rawExchange(t, p.addr, raw); !strings.HasPrefix(out, "HTTP/1.1 431 ") {
		t.Fatalf("got %q, want 431", firstLine(out))
	}
}

func TestStreamsChunkedBothWays(t *testing.T) {
	t.Parallel()
	m := newMember(t, "a", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fl := w.(http.Flusher)
		fmt.Fprintf(w, "got %d\n", n)
		fl.Flush()
		if r.URL.Path == "/events" {
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "data: %d\n\n", i)
				fl.Flush()
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	p := startBalancer(t, Config{}, m.URL)
	c := newClient()
	// A chunked upload of 8 MiB streams through.
	pr, pw := io.Pipe()
	go func() {
		buf := make([]byte, 64<<10)
		for i := 0; i < 128; i++ {
			pw.Write(buf)
		}
		pw.Close()
	}()
	resp, err := c.Post(p.url+"/upload", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "got 8388608\n" {
		t.Fatalf("upload: got %q, want %q", body, "got 8388608\n")
	}
	// Server-sent events arrive one by one, before the response ends.
	resp, err = c.Get(p.url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "got 0\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	for i := 0; i < 3; i++ {
		line, err := br.ReadString('\n')
		if want := fmt.Sprintf("data: %d\n", i); err != nil || line != want {
			t.Fatalf("event %d: got %q, %v; want %q", i, line, err, want)
		}
		br.ReadString('\n')
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
