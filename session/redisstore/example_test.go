package redisstore_test

import (
	"github.com/redis/go-redis/v9"

	"scaleout/session"
	"scaleout/session/redisstore"
)

// Sessions in Redis: entries expire by Redis's own key expiry.
func Example() {
	c := redis.NewClient(&redis.Options{Addr: "cache.internal:6379"})
	defer c.Close()
	st, err := redisstore.New(redisstore.Config{Client: c})
	if err != nil {
		panic(err)
	}
	m, err := session.New(session.Config{Store: st, Generations: st})
	if err != nil {
		panic(err)
	}
	_ = m.Handler // wrap the app's handler with it
}
