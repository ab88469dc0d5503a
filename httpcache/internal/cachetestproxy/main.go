// Command cachetestproxy puts an httpcache.Shared in front of one origin, so
// that the public HTTP caching test suite (npm: http-cache-tests) can drive
// it; scripts/cache-tests.sh runs it. It listens on loopback only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"scaleout/httpcache"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cachetestproxy:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	originURL := flag.String("origin", "", "origin base URL, e.g. http://127.0.0.1:8000")
	flag.Parse()
	u, err := url.Parse(*originURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-origin %q: need an absolute URL", *originURL)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.URL.Scheme, r.URL.Host = u.Scheme, u.Host
		return tr.RoundTrip(r)
	})
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cache, err := httpcache.NewShared(httpcache.Config{Next: next, MaxBytes: 64 << 20, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The suite pauses between requests on kept-alive connections: keep
	// them longer than its pauses.
	srv := &http.Server{Handler: cache.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	done := make(chan error, 1)
	go func() { done <- cache.Run(ctx) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return <-done
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
