package health

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const goodBody = `{"id":"app-1","url":"http://127.0.0.1:8081","state":"ready","in_flight":3,"capacity":64,"interval_ms":1000}`

func newTestRegistry(t *testing.T) (*Registry, *memPool) {
	t.Helper()
	pool := newMemPool()
	r, err := NewRegistry(RegistryConfig{Pool: pool, Token: "secret-token"})
	if err != nil {
		t.Fatal(err)
	}
	return r, pool
}

func post(r *Registry, method, auth, ctype, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, HeartbeatPath, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	w := httptest.NewRecorder()
	r.Handler().ServeHTTP(w, req)
	return w
}

func TestHandlerAccepts(t *testing.T) {
	r, pool := newTestRegistry(t)
	w := post(r, "POST", "Bearer secret-token", "application/json; charset=utf-8", goodBody)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d (%s), want 200", w.Code, w.Body)
	}
	var resp struct {
		LeaseMS int64 `json:"lease_ms"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.LeaseMS != 3000 {
		t.Errorf("body %q: want lease_ms 3000 (err %v)", w.Body, err)
	}
	m, ok := pool.member("app-1")
	if !ok || m.State != StateReady || m.InFlight != 3 || m.Capacity != 64 || m.URL != "http://127.0.0.1:8081" {
		t.Errorf("pool member %+v (present %v), want ready app-1 with in-flight 3, capacity 64", m, ok)
	}
}

func TestHandlerRefusesBadHeartbeats(t *testing.T) {
	big := `{"id":"app-1","url":"http://127.0.0.1:8081","state":"ready","in_flight":0,"capacity":0,"interval_ms":1000,"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name, method, auth, ctype, body string
		want                            int
		reason                          string
		msg                             string // part of the error message
	}{
		{"wrong token", "POST", "Bearer wrong", "", goodBody, 401, "auth", "token"},
		{"missing token", "POST", "", "", goodBody, 401, "auth", "token"},
		{"token prefix only", "POST", "Bearer secret", "", goodBody, 401, "auth", "token"},
		{"basic auth", "POST", "Basic c2VjcmV0LXRva2Vu", "", goodBody, 401, "auth", "token"},
		{"GET", "GET", "Bearer secret-token", "", "", 405, "method", "POST"},
		{"form body", "POST", "Bearer secret-token", "application/x-www-form-urlencoded", goodBody, 415, "content_type", "application/json"},
		{"oversized body", "POST", "Bearer secret-token", "", big, 413, "too_large", "bytes"},
		{"malformed JSON", "POST", "Bearer secret-token", "", `{"id":"app-1",`, 400, "malformed", "JSON"},
		{"not an object", "POST", "Bearer secret-token", "", `[1,2]`, 400, "malformed", "JSON"},
		{"empty body", "POST", "Bearer secret-token", "", ``, 400, "malformed", "empty"},
		{"trailing data", "POST", "Bearer secret-token", "", goodBody + `{}`, 400, "malformed", "trailing"},
		{"unknown field", "POST", "Bearer secret-token", "", strings.Replace(goodBody, `"state"`, `"queue":1,"state"`, 1), 400, "malformed", "queue"},
		{"string number", "POST", "Bearer secret-token", "", strings.Replace(goodBody, `"in_flight":3`, `"in_flight":"3"`, 1), 400, "malformed", "in_flight"},
		{"ftp url", "POST", "Bearer secret-token", "", strings.Replace(goodBody, "http://", "ftp://", 1), 400, "invalid", "scheme"},
		{"url without port", "POST", "Bearer secret-token", "", strings.Replace(goodBody, ":8081", "", 1), 400, "invalid", "host:port"},
		{"url with path", "POST", "Bearer secret-token", "", strings.Replace(goodBody, ":8081", ":8081/app", 1), 400, "invalid", "only scheme"},
		{"too-long id", "POST", "Bearer secret-token", "", strings.Replace(goodBody, "app-1", strings.Repeat("a", 129), 1), 400, "invalid", "129 bytes"},
		{"odd id", "POST", "Bearer secret-token", "", strings.Replace(goodBody, "app-1", "app/1", 1), 400, "invalid", "id"},
		{"bad state", "POST", "Bearer secret-token", "", strings.Replace(goodBody, `"ready"`, `"up"`, 1), 400, "invalid", "state"},
		{"negative in-flight", "POST", "Bearer secret-token", "", strings.Replace(goodBody, `"in_flight":3`, `"in_flight":-1`, 1), 400, "invalid", "in_flight"},
		{"interval too short", "POST", "Bearer secret-token", "", strings.Replace(goodBody, `1000`, `10`, 1), 400, "invalid", "interval_ms"},
		{"interval too long", "POST", "Bearer secret-token", "", strings.Replace(goodBody, `1000`, `3600000`, 1), 400, "invalid", "interval_ms"},
		{"weight too big", "POST", "Bearer secret-token", "", strings.Replace(goodBody, `"state"`, `"weight":5000,"state"`, 1), 400, "invalid", "weight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, pool := newTestRegistry(t)
			w := post(r, tt.method, tt.auth, tt.ctype, tt.body)
			if w.Code != tt.want {
				t.Fatalf("status %d (%s), want %d", w.Code, w.Body, tt.want)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tt.msg) {
				t.Errorf("error body %q: want JSON naming %q", w.Body, tt.msg)
			}
			if calls := pool.log(); len(calls) != 0 {
				t.Errorf("pool calls %v after a refused heartbeat, want none", calls)
			}
			s := r.Stats()
			if s.Rejected[tt.reason] != 1 || s.Heartbeats != 0 || len(r.Leases()) != 0 {
				t.Errorf("stats %+v: want one %q rejection and nothing accepted", s, tt.reason)
			}
		})
	}
}

func TestHandlerMetrics(t *testing.T) {
	r, _ := newTestRegistry(t)
	post(r, "POST", "Bearer secret-token", "", goodBody)
	post(r, "POST", "Bearer nope", "", goodBody)
	var b strings.Builder
	r.WriteMetrics(&b)
	for _, want := range []string{
		"scaleout_heartbeats_total 1\n",
		`scaleout_heartbeat_rejected_total{reason="auth"} 1` + "\n",
		`scaleout_heartbeat_members{state="ready"} 1` + "\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}

func TestParseHeartbeat(t *testing.T) {
	h, err := ParseHeartbeat([]byte(`{"id":"a.b_c:1-2","url":"https://[::1]:443/","state":"draining","in_flight":0,"capacity":0,"interval_ms":250,"weight":7,"seq":9}`))
	if err != nil {
		t.Fatalf("ParseHeartbeat: %v", err)
	}
	want := Heartbeat{ID: "a.b_c:1-2", URL: "https://[::1]:443/", State: StateDraining, IntervalMS: 250, Weight: 7, Seq: 9}
	if h != want {
		t.Errorf("got %+v, want %+v", h, want)
	}
	if h.Interval() != 250*time.Millisecond {
		t.Errorf("Interval() = %v, want 250ms", h.Interval())
	}
	for _, bad := range []string{`{}`, `null`, `{"id":"a"}`, goodBody[:len(goodBody)-1], strings.Replace(goodBody, "8081", "99999", 1)} {
		if _, err := ParseHeartbeat([]byte(bad)); err == nil {
			t.Errorf("ParseHeartbeat(%.60q): nil error", bad)
		}
	}
}

func TestIDFromURL(t *testing.T) {
	tests := []struct{ url, want string }{
		{"http://127.0.0.1:8081", "127.0.0.1:8081"},
		{"http://[::1]:8081/", "::1:8081"},
		{"https://app.internal:443", "app.internal:443"},
	}
	for _, tt := range tests {
		got, err := IDFromURL(tt.url)
		if err != nil || got != tt.want {
			t.Errorf("IDFromURL(%q) = %q, %v; want %q", tt.url, got, err, tt.want)
		}
	}
	if _, err := IDFromURL("unix:///run/app.sock"); err == nil {
		t.Error("IDFromURL(unix socket): nil error")
	}
}

// TestHandlerConcurrent posts heartbeats from many goroutines while the
// lease loop runs, for the race detector and the counters' consistency.
func TestHandlerConcurrent(t *testing.T) {
	t.Parallel()
	r, pool := newTestRegistry(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				body := strings.Replace(goodBody, "app-1", fmt.Sprintf("app-%d-%d", g, i%10), 1)
				if w := post(r, "POST", "Bearer secret-token", "", body); w.Code != http.StatusOK {
					t.Errorf("status %d (%s)", w.Code, w.Body)
					return
				}
			}
		})
	}
	wg.Wait()
	cancel()
	<-done
	if s := r.Stats(); s.Heartbeats != 800 || s.Registrations != 80 || s.Members[StateReady] != 80 {
		t.Errorf("stats %+v: want 800 heartbeats from 80 ready members", s)
	}
	if m, ok := pool.member("app-7-9"); !ok || m.State != StateReady {
		t.Errorf("member app-7-9 %+v (present %v), want ready", m, ok)
	}
}
