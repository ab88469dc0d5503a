package rediscache_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"scaleout/cache"
	"scaleout/cache/rediscache"
	"scaleout/cache/respserver"
)

// Example shares a cache between two app servers through one server that
// speaks the Redis protocol (here the embedded one; real Redis alike).
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	srv, _ := respserver.New(respserver.Config{})
	defer srv.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = srv.Serve(ctx, ln) }()

	newCache := func() *cache.Cache[string] {
		client := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), Protocol: 2, DisableIdentity: true})
		store, _ := rediscache.New(rediscache.Config{Client: client, Prefix: "flights:"})
		c, _ := cache.New(cache.Config[string]{Store: store})
		return c
	}
	a, b := newCache(), newCache()
	loads := 0
	load := func(context.Context) (string, error) { loads++; return "on time", nil }
	s1, _ := a.GetOrLoad(ctx, "status:42", time.Minute, load)
	s2, _ := b.GetOrLoad(ctx, "status:42", time.Minute, load)
	fmt.Println(s1, s2, loads)
	// Output: on time on time 1
}
