package httpcache

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The hit path against the miss path, in one run: both go through the
// same RoundTrip to a real origin server on loopback; a hit never reaches it.
func BenchmarkRoundTrip(b *testing.B) {
	body := strings.Repeat("x", 2048)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/nostore" {
			w.Header().Set("Cache-Control", "no-store")
		} else {
			w.Header().Set("Cache-Control", "max-age=3600")
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, body)
	}))
	defer o.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	s, err := NewShared(Config{Next: tr, MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	do := func(b *testing.B, url string, hdr ...string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := s.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	do(b, o.URL+"/hit")
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			do(b, o.URL+"/hit")
		}
	})
	// The cache's own cost: the same request each time, as a proxy
	// that already parsed it would pass it.
	b.Run("hit-cache-only", func(b *testing.B) {
		req, _ := http.NewRequest(http.MethodGet, o.URL+"/hit", nil)
		b.ReportAllocs()
		for b.Loop() {
			res, err := s.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
	b.Run("hit-304", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			do(b, o.URL+"/hit", "If-None-Match", `"v1"`)
		}
	})
	b.Run("hit-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				do(b, o.URL+"/hit")
			}
		})
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			do(b, o.URL+"/nostore")
		}
	})
	b.Run("miss-stored", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			do(b, fmt.Sprintf("%s/m%d", o.URL, i))
		}
	})
}

func BenchmarkParseCacheControl(b *testing.B) {
	v := []string{"public, max-age=3600, s-maxage=600, stale-while-revalidate=30"}
	b.ReportAllocs()
	for b.Loop() {
		ParseCacheControl(v)
	}
}
