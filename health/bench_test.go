package health

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user plus system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU time per heartbeat, and the share of one core that
// 1,000 members at 1 Hz (1,000 heartbeats a second) would cost.
func reportCPU(b *testing.B, cpu time.Duration) {
	per := float64(cpu.Nanoseconds()) / float64(b.N)
	b.ReportMetric(per, "cpu-ns/heartbeat")
	b.ReportMetric(per*1000/1e9*100, "%core@1k/s")
}

func heartbeatBodies(n int) [][]byte {
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"id":"app-%04d","url":"http://10.0.%d.%d:8080","state":"ready","in_flight":%d,"capacity":64,"interval_ms":1000,"seq":%d}`,
			i, i/250, i%250+1, i%50, 1)
	}
	return bodies
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler rather than a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkHandleHeartbeat1000Members measures the handler alone (token
// check, body read, strict decode, validation, lease update, pool upsert)
// cycling over 1,000 members, as the admin listener's mux would call it.
func BenchmarkHandleHeartbeat1000Members(b *testing.B) {
	reg, err := NewRegistry(RegistryConfig{Pool: newMemPool(), Token: "bench-token"})
	if err != nil {
		b.Fatal(err)
	}
	h := reg.Handler()
	bodies := heartbeatBodies(1000)
	hdr := http.Header{"Authorization": {"Bearer bench-token"}, "Content-Type": {"application/json"}}
	w := &discardWriter{h: http.Header{}}
	rd := new(bytes.Reader)
	req := &http.Request{Method: http.MethodPost, Header: hdr}
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime(b)
	for i := 0; b.Loop(); i++ {
		body := bodies[i%len(bodies)]
		rd.Reset(body)
		req.Body, req.ContentLength = io.NopCloser(rd), int64(len(body))
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	reportCPU(b, cpuTime(b)-start)
	if st := reg.Stats(); st.Rejected["malformed"]+st.Rejected["invalid"] != 0 || st.Members[StateReady] != 1000 {
		b.Fatalf("stats %+v: want 1000 ready members, nothing refused", st)
	}
}

// BenchmarkHeartbeatOverHTTP1000Members measures the whole path on
// loopback: net/http's server reading each request off a keep-alive
// connection, the handler, and the response written back. The client is a
// raw connection writing prepared requests, so that most of the CPU
// measured is the server's; the figure is still an upper bound for it. The
// "empty" peer answers the same requests with a handler that does nothing,
// so the difference is what heartbeat handling adds to serving HTTP at all.
func BenchmarkHeartbeatOverHTTP1000Members(b *testing.B) {
	reg, err := NewRegistry(RegistryConfig{Pool: newMemPool(), Token: "bench-token"})
	if err != nil {
		b.Fatal(err)
	}
	empty := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"lease_ms":3000}` + "\n"))
	})
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"registry", reg.Handler()}, {"empty", empty}} {
		b.Run(bc.name, func(b *testing.B) { benchOverHTTP(b, bc.h) })
	}
}

func benchOverHTTP(b *testing.B, h http.Handler) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var reqs [][]byte
	for _, body := range heartbeatBodies(1000) {
		reqs = append(reqs, fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: lb\r\nAuthorization: Bearer bench-token\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", HeartbeatPath, len(body), body))
	}
	br := bufio.NewReader(conn)
	start := cpuTime(b)
	for i := 0; b.Loop(); i++ {
		if _, err := conn.Write(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	reportCPU(b, cpuTime(b)-start)
}

// BenchmarkSweep1000Members measures one pass of Run's lease check over
// 1,000 live members; at 1 Hz heartbeats with 3-interval leases Run wakes
// about every 2s, so its cost per second is half this.
func BenchmarkSweep1000Members(b *testing.B) {
	reg, err := NewRegistry(RegistryConfig{Pool: newMemPool(), Token: "bench-token"})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range 1000 {
		if err := reg.Apply(Heartbeat{ID: fmt.Sprintf("app-%d", i), URL: "http://127.0.0.1:8080", State: StateReady, IntervalMS: 1000}, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		reg.sweep(now.Add(time.Second))
	}
}
