package cachetest

import (
	"context"
	"net"
	"testing"

	"scaleout/cache/respserver"
)

// ServeEmbedded serves a new cache/respserver on a free loopback port until
// the test ends, and returns it with its address.
func ServeEmbedded(t testing.TB, cfg respserver.Config) (*respserver.Server, string) {
	t.Helper()
	s, err := respserver.New(cfg)
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
			t.Errorf("respserver Serve: %v", err)
		}
		s.Close()
	})
	return s, ln.Addr().String()
}

// Embedded is ServeEmbedded with the default config, returning the address.
func Embedded(t testing.TB) string {
	_, addr := ServeEmbedded(t, respserver.Config{})
	return addr
}
