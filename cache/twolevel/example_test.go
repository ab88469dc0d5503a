package twolevel_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"scaleout/cache"
	"scaleout/cache/rediscache"
	"scaleout/cache/respserver"
	"scaleout/cache/twolevel"
)

// Example runs two app servers' two-level stores over one embedded cache
// server: a write on one drops the other's near copy.
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	srv, _ := respserver.New(respserver.Config{})
	defer srv.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = srv.Serve(ctx, ln) }()

	newServer := func() (*twolevel.Store, *cache.Cache[int]) {
		client := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), Protocol: 2, DisableIdentity: true})
		remote, _ := rediscache.New(rediscache.Config{Client: client})
		s, _ := twolevel.New(twolevel.Config{Remote: remote})
		go func() { _ = s.Run(ctx) }() // the app's errgroup owns this
		c, _ := cache.New(cache.Config[int]{Store: s})
		return s, c
	}
	sa, a := newServer()
	sb, b := newServer()
	for !sa.Live() || !sb.Live() {
		time.Sleep(time.Millisecond)
	}

	seats := 7
	load := func(context.Context) (int, error) { return seats, nil }
	for range 3 { // load, then fill b's near cache, then a near hit
		_, _ = b.GetOrLoad(ctx, "seats:42", time.Minute, load)
	}
	seats = 6 // the database write, then the invalidation
	_ = a.Invalidate(ctx, "seats:42")
	for sb.Invalidations() == 0 {
		time.Sleep(time.Millisecond)
	}
	v, _ := b.GetOrLoad(ctx, "seats:42", time.Minute, load)
	fmt.Println(v)
	// Output: 6
}
