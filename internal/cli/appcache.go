package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"scaleout/cache"
	"scaleout/cache/local"
	"scaleout/cache/rediscache"
	"scaleout/cache/twolevel"
	"scaleout/internal/app"
)

// flightCache is the app's server-side cache of the flight list over a
// cache.Cache: shared through Redis (or scaleout up's embedded server) when
// an address is given, with a near copy in each app server that the other
// servers' invalidations drop; in-process otherwise.
type flightCache struct {
	c *cache.Cache[[]app.Flight]
}

// flightListTTL bounds how stale the list may get should an invalidation
// be lost; bookings invalidate it at once.
const flightListTTL = 30 * time.Second

func (f flightCache) Flights(ctx context.Context, load func(context.Context) ([]app.Flight, error)) ([]app.Flight, error) {
	return f.c.GetOrLoad(ctx, "flights", flightListTTL, load, cache.WithTags("flights"))
}

func (f flightCache) Invalidate(ctx context.Context, flightID int64) error {
	return f.c.InvalidateTags(ctx, "flights", fmt.Sprintf("flight:%d", flightID))
}

// openFlightCache builds the cache; run, when not nil, keeps the near
// cache's invalidation subscription and must run beside the server.
func openFlightCache(addr string, log *slog.Logger) (fc flightCache, run func(context.Context) error, closeFn func(), err error) {
	var store cache.Store
	closeFn = func() {}
	if addr == "" {
		st, err := local.New(local.Config{})
		if err != nil {
			return fc, nil, nil, err
		}
		store = st
	} else {
		client := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
		remote, err := rediscache.New(rediscache.Config{Client: client, Prefix: "airline:", Logger: log})
		if err != nil {
			client.Close()
			return fc, nil, nil, err
		}
		tl, err := twolevel.New(twolevel.Config{Remote: remote, Logger: log})
		if err != nil {
			client.Close()
			return fc, nil, nil, err
		}
		store, run = tl, tl.Run
		closeFn = func() { tl.Close(); client.Close() }
	}
	c, err := cache.New(cache.Config[[]app.Flight]{Store: store, EarlyRefresh: 1, Logger: log})
	if err != nil {
		closeFn()
		return fc, nil, nil, err
	}
	return flightCache{c}, run, closeFn, nil
}
