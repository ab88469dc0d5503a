package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"scaleout/balancer"
	"scaleout/dbrouter"
	"scaleout/dbrouter/shard"
	"scaleout/session"
	"scaleout/session/sqlitestore"
)

// newServer starts an app server on the shared files in dir.
func newServer(t *testing.T, dir, id string) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	db, err := sqlitestore.Open(filepath.Join(dir, "airline.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sdb, err := sqlitestore.Open(filepath.Join(dir, "sessions.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sdb.Close() })
	st, err := sqlitestore.New(ctx, sqlitestore.Config{DB: sdb})
	if err != nil {
		t.Fatal(err)
	}
	sm, err := session.New(session.Config{Store: st, Generations: st})
	if err != nil {
		t.Fatal(err)
	}
	router, err := dbrouter.New(dbrouter.Config{Primary: db, Dialect: dbrouter.SQLite{}})
	if err != nil {
		t.Fatal(err)
	}
	pax, closePax, err := shard.OpenSQLite(ctx, shard.SQLiteConfig{Dir: filepath.Join(dir, "passengers"), Shards: 3, DDL: []string{PassengerDDL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closePax() })
	a, err := New(ctx, Config{ID: id, DB: router, Passengers: pax, Sessions: sm})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv
}

func client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

func fetch(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestFlightsAndConditionalRequests(t *testing.T) {
	t.Parallel()
	srv := newServer(t, t.TempDir(), "app-1")
	c := client()
	req, _ := http.NewRequest("GET", srv.URL+"/flights", nil)
	resp, body := fetch(t, c, req)
	if resp.StatusCode != 200 || !strings.Contains(body, "New York (JFK)") || !strings.Contains(body, "app-1") {
		t.Fatalf("flight list: %d %.200q", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "public") {
		t.Errorf("flight list Cache-Control %q, want public", cc)
	}
	req, _ = http.NewRequest("GET", srv.URL+"/flights/1", nil)
	resp, body = fetch(t, c, req)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag == "" || !strings.Contains(body, "Harry") {
		t.Fatalf("flight 1: %d, ETag %q, body %.200q", resp.StatusCode, etag, body)
	}
	req, _ = http.NewRequest("GET", srv.URL+"/flights/1", nil)
	req.Header.Set("If-None-Match", etag)
	if resp, _ := fetch(t, c, req); resp.StatusCode != 304 {
		t.Fatalf("revalidation with the current ETag: got %d, want 304", resp.StatusCode)
	}
	// Booking changes the flight, so the old ETag no longer matches.
	resp, _ = fetch(t, c, postForm(srv.URL+"/flights/1/book", url.Values{"name": {"Neville"}}))
	if resp.StatusCode != 200 { // after following the 303
		t.Fatalf("booking: got %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("GET", srv.URL+"/flights/1", nil)
	req.Header.Set("If-None-Match", etag)
	resp, body = fetch(t, c, req)
	if resp.StatusCode != 200 || !strings.Contains(body, "Neville") {
		t.Fatalf("after booking, the old ETag: got %d, want 200 with the new passenger", resp.StatusCode)
	}
	for _, tc := range []struct {
		method, path string
		form         url.Values
		want         int
	}{
		{"GET", "/flights/999", nil, 404},
		{"GET", "/flights/abc", nil, 400},
		{"POST", "/flights/1/book", url.Values{"name": {""}}, 400},
		{"POST", "/flights/999/book", url.Values{"name": {"X"}}, 404},
		{"POST", "/login", url.Values{"name": {strings.Repeat("x", 100)}}, 400},
	} {
		var req *http.Request
		if tc.method == "GET" {
			req, _ = http.NewRequest("GET", srv.URL+tc.path, nil)
		} else {
			req = postForm(srv.URL+tc.path, tc.form)
		}
		if resp, _ := fetch(t, c, req); resp.StatusCode != tc.want {
			t.Errorf("%s %s: got %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
}

func postForm(u string, v url.Values) *http.Request {
	req, _ := http.NewRequest("POST", u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// TestSessionSharedBehindBalancer logs in through a round-robin balancer
// without stickiness: the next requests land on the other app server, which
// sees the same session from the shared store.
func TestSessionSharedBehindBalancer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s1, s2 := newServer(t, dir, "app-1"), newServer(t, dir, "app-2")
	sel, _ := balancer.NewSelector(balancer.PolicyConfig{Name: "round-robin"})
	b, err := balancer.New(balancer.Config{Selector: sel})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []*httptest.Server{s1, s2} {
		m, _ := balancer.NewBackend([]string{"a", "b"}[i], s.URL, 1)
		b.Add(m)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	front := "http://" + ln.Addr().String()

	c := client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := fetch(t, c, postForm(front+"/login", url.Values{"name": {"ginny"}}))
	if resp.StatusCode != 303 {
		t.Fatalf("login: got %d, want 303", resp.StatusCode)
	}
	loggedInOn := resp.Header.Get("X-Served-By")
	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		req, _ := http.NewRequest("GET", front+"/me", nil)
		resp, body := fetch(t, c, req)
		if resp.StatusCode != 200 || !strings.Contains(body, "Hello, ginny") {
			t.Fatalf("/me via %s: %d %.200q; want the logged-in page", resp.Header.Get("X-Served-By"), resp.StatusCode, body)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "private") {
			t.Errorf("/me Cache-Control %q, want private", cc)
		}
		seen[resp.Header.Get("X-Served-By")] = true
	}
	if len(seen) != 2 {
		t.Fatalf("the session was seen on %v, want both servers (logged in on %s)", seen, loggedInOn)
	}
	// Logout on one server ends the session on both.
	fetch(t, c, postForm(front+"/logout", nil))
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("GET", front+"/me", nil)
		if resp, _ := fetch(t, c, req); resp.StatusCode != 303 {
			t.Errorf("/me after logout: got %d, want 303 to the login page", resp.StatusCode)
		}
	}
}

// TestBookingsGatheredFromShards books on several flights, whose passengers
// live on different shards, and finds them all on the user's page.
func TestBookingsGatheredFromShards(t *testing.T) {
	t.Parallel()
	srv := newServer(t, t.TempDir(), "app-1")
	c := client()
	fetch(t, c, postForm(srv.URL+"/login", url.Values{"name": {"luna"}}))
	for id := 1; id <= 6; id++ {
		resp, _ := fetch(t, c, postForm(srv.URL+"/flights/"+strconv.Itoa(id)+"/book", url.Values{"name": {"Luna" + strconv.Itoa(id)}}))
		if resp.StatusCode != 200 {
			t.Fatalf("booking on flight %d: status %d", id, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/me", nil)
	_, body := fetch(t, c, req)
	for id := 1; id <= 6; id++ {
		if want := "Luna" + strconv.Itoa(id) + " on flight " + strconv.Itoa(id); !strings.Contains(body, want) {
			t.Errorf("/me lacks %q", want)
		}
	}
	req, _ = http.NewRequest("GET", srv.URL+"/api/flights", nil)
	_, body = fetch(t, c, req)
	if !strings.Contains(body, `"id":1,`) || !strings.Contains(body, `"passengers":3`) {
		t.Errorf("flight list counts: %.300s", body)
	}
}
