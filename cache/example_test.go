package cache_test

import (
	"context"
	"fmt"
	"time"

	"scaleout/cache"
	"scaleout/cache/local"
)

type flight struct {
	ID    int
	Seats int
}

func Example() {
	store, err := local.New(local.Config{})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	c, err := cache.New(cache.Config[flight]{Store: store})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	seats := 7 // the database
	load := func(context.Context) (flight, error) {
		fmt.Println("query the database")
		return flight{ID: 42, Seats: seats}, nil
	}
	f, _ := c.GetOrLoad(ctx, "flight:42", time.Minute, load, cache.WithTags("flight:42"))
	f, _ = c.GetOrLoad(ctx, "flight:42", time.Minute, load, cache.WithTags("flight:42"))
	fmt.Println(f.Seats)

	seats = 6 // UPDATE flights ..., committed; then invalidate
	_ = c.InvalidateTags(ctx, "flight:42")
	f, _ = c.GetOrLoad(ctx, "flight:42", time.Minute, load, cache.WithTags("flight:42"))
	fmt.Println(f.Seats)
	// Output:
	// query the database
	// 7
	// query the database
	// 6
}
