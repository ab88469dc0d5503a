package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"scaleout/internal/testserver"
)

// TestBalancePurgeRedis runs two `scaleout balance --cache --purge-redis`
// processes on one real Redis: a purge through one's admin API is visible
// on the other's very next request.
func TestBalancePurgeRedis(t *testing.T) {
	t.Parallel()
	rs := testserver.Redis(t)
	var served atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=600")
		io.WriteString(w, "flights")
	}))
	defer app.Close()
	type bal struct{ listen, admin string }
	var bals []bal
	for range 2 {
		b := bal{freeAddr(t), freeAddr(t)}
		startBinary(t, "balance", "--listen", b.listen, "--admin", b.admin, "--backend", app.URL,
			"--cache", "--purge-redis", rs.Addr, "--log-level", "warn")
		bals = append(bals, b)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	fetch := func(b bal) string {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+b.listen+"/flights", nil)
		req.Host = "shop.example"
		deadline := time.Now().Add(60 * time.Second)
		for {
			res, err := client.Do(req)
			if err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				return res.Header.Get("Cache-Status")
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET through %s: %v", b.listen, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, b := range bals {
		fetch(b)
		if cs := fetch(b); !strings.Contains(cs, "hit") {
			t.Fatalf("second GET through %s: Cache-Status %q, want a hit", b.listen, cs)
		}
	}
	// Both balancers must be subscribed before the purge can reach them:
	// a purge confirmed by fewer answers 502, so retry until it says 200.
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := client.Post("http://"+bals[0].admin+"/api/cache/purge", "application/json",
			strings.NewReader(`{"urls": ["http://shop.example/flights"]}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == 200 && strings.Contains(string(body), `"purged":2`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("purge through the admin API: %d %s, want 200 with 2 purged", res.StatusCode, body)
		}
		// Not every balancer held the entry or confirmed yet: store again.
		for _, b := range bals {
			fetch(b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := served.Load()
	if cs := fetch(bals[1]); !strings.Contains(cs, "fwd=uri-miss") || served.Load() != before+1 {
		t.Errorf("next GET on the other balancer: Cache-Status %q, app requests %d, want a miss reaching the app (%d)", cs, served.Load(), before+1)
	}
}
