package respserver_test

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

// Example runs the embedded cache server and uses it through rediscache,
// exactly as app servers use real Redis.
func Example() {
	srv, err := respserver.New(respserver.Config{MaxBytes: 64 << 20})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx, ln) }()

	client := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), Protocol: 2, DisableIdentity: true})
	store, _ := rediscache.New(rediscache.Config{Client: client})
	c, _ := cache.New(cache.Config[string]{Store: store})
	v, err := c.GetOrLoad(ctx, "greeting", time.Minute, func(context.Context) (string, error) { return "hello", nil })
	fmt.Println(v, err)

	client.Close()
	stop()
	fmt.Println(<-done)
	// Output:
	// hello <nil>
	// <nil>
}
