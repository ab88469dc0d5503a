package local_test

import (
	"context"
	"fmt"
	"time"

	"scaleout/cache"
	"scaleout/cache/local"
)

// Example shares one in-process store between two typed caches, as two
// handlers of one app process would.
func Example() {
	store, err := local.New(local.Config{MaxBytes: 16 << 20})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	names, _ := cache.New(cache.Config[string]{Store: store})
	ctx := context.Background()
	load := func(context.Context) (string, error) { return "Paris", nil }
	city, _ := names.GetOrLoad(ctx, "airport:CDG", time.Hour, load)
	again, ok := names.Get(ctx, "airport:CDG")
	fmt.Println(city, again, ok)
	// Output: Paris Paris true
}
