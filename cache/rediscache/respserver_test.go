package rediscache_test

import (
	"context"
	"net"
	"testing"

	"scaleout/cache/cachetest"
	"scaleout/cache/respserver"
)

// embedded serves a cache/respserver on a free loopback port until the
// test ends and returns its address.
func embedded(t testing.TB) string {
	t.Helper()
	s, err := respserver.New(respserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		s.Close()
	})
	return ln.Addr().String()
}

// TestConformanceEmbedded runs the same suite as TestConformanceRedis
// against the embedded server that `scaleout up` uses.
func TestConformanceEmbedded(t *testing.T) {
	t.Parallel()
	cachetest.TestStore(t, ServersAt(embedded), cachetest.Options{})
}

func BenchmarkHitEmbedded(b *testing.B)      { cachetest.BenchmarkHit(b, ServersAt(embedded)) }
func BenchmarkStampedeEmbedded(b *testing.B) { cachetest.BenchmarkStampede(b, ServersAt(embedded)) }
