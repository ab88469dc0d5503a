package redispurge_test

import (
	"context"
	"log"
	"net/http"

	"github.com/redis/go-redis/v9"

	"scaleout/httpcache"
	"scaleout/httpcache/redispurge"
)

// Each balancer builds a Purger in front of its own cache and runs it; the
// admin API hands purge orders to the Purger instead of the cache, so an
// order given to any balancer reaches all of them. (Not run: it needs a
// Redis server.)
func Example() {
	cache, err := httpcache.NewShared(httpcache.Config{Next: http.DefaultTransport})
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	purger, err := redispurge.New(redispurge.Config{Client: rdb, Local: cache, Channel: "shop:purge"})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go purger.Run(ctx) // owned by the caller; returns when ctx ends

	http.Handle("POST /api/cache/purge", httpcache.PurgeHandler(purger))
	n, err := purger.Purge(ctx, httpcache.Purge{Tags: []string{"flights"}})
	log.Printf("purged %d entries on every balancer (err %v)", n, err)
}
