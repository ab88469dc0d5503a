package loadgen

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkRoundTrip compares, in the same run and against the same
// server, this package's client with net/http's on one keep-alive
// connection: the reason the package has a client of its own. Read the
// ratio of the two ns/op figures, not the absolute ones.
func BenchmarkRoundTrip(b *testing.B) {
	body := []byte("hello from the bench target\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	defer srv.Close()

	b.Run("loadgen", func(b *testing.B) {
		g, err := New(Config{Targets: []Target{{URL: srv.URL}}})
		if err != nil {
			b.Fatal(err)
		}
		c, err := dial(context.Background(), g.endpoints[0], time.Second, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.close()
		req := g.requests[0]
		b.ReportAllocs()
		for b.Loop() {
			resp, err := c.roundTrip(req.wire, false, time.Now(), 10*time.Second)
			if err != nil || resp.status != 200 {
				b.Fatalf("round trip: %v, status %d", err, resp.status)
			}
		}
	})
	b.Run("net-http", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
		defer client.CloseIdleConnections()
		b.ReportAllocs()
		for b.Loop() {
			resp, err := client.Get(srv.URL)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// BenchmarkClosedLoop measures a whole closed-loop run of the generator
// against an in-process server, per request: the CPU the generator and the
// server share, as on a real machine.
func BenchmarkClosedLoop(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	g, err := New(Config{Targets: []Target{{URL: srv.URL}}, Connections: 8, Requests: int64(max(b.N, 8))})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	res, err := g.Run(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if res.Errors != 0 {
		b.Fatalf("%d errors: %v", res.Errors, res.ErrorsByKind)
	}
}
