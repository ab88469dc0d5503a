package cachetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"scaleout/cache"
)

// Stampede runs perServer goroutines on each of servers caches, all missing
// key at once, with a loader that takes loadTime; it returns how many loads
// ran. A correct backend runs exactly one.
func Stampede(t testing.TB, newServer func() cache.Store, servers, perServer int, key string, loadTime time.Duration) int64 {
	t.Helper()
	var loads atomic.Int64
	load := func(context.Context) (int, error) {
		loads.Add(1)
		time.Sleep(loadTime)
		return 7, nil
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, servers*perServer)
	for range servers {
		c := NewCache[int](t, newServer())
		for range perServer {
			wg.Go(func() {
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), patience)
				defer cancel()
				v, err := c.GetOrLoad(ctx, key, time.Minute, load)
				if err == nil && v != 7 {
					err = fmt.Errorf("got %d, want 7", v)
				}
				errs <- err
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("stampede: %v", err)
		}
	}
	return loads.Load()
}

func testStampede(t *testing.T, newServer func() cache.Store, _ Options) {
	if got := Stampede(t, newServer, 4, 8, "hot", 50*time.Millisecond); got != 1 {
		t.Errorf("4 servers x 8 goroutines missing together ran %d loads, want 1", got)
	}
}

// testSlowLoader reproduces the classic race deterministically: a reader
// misses and reads the old value from the database; a writer then updates
// the database and invalidates; only then does the reader's load return and
// try to fill the cache with the old value. No read after the write may see
// it, on the reader's server or another.
func testSlowLoader(t *testing.T, newServer func() cache.Store, opts Options) {
	for _, writerOnOther := range []bool{false, true} {
		t.Run(fmt.Sprintf("writerOnOtherServer=%v", writerOnOther), func(t *testing.T) {
			reader, other := NewCache[string](t, newServer()), NewCache[string](t, newServer())
			writer := reader
			if writerOnOther {
				writer = other
			}
			var db atomic.Value
			db.Store("old")
			current := func(context.Context) (string, error) { return db.Load().(string), nil }
			loading, release := make(chan struct{}), make(chan struct{})
			slow := func(context.Context) (string, error) {
				v := db.Load().(string)
				close(loading)
				<-release
				return v, nil
			}
			key := fmt.Sprintf("slow:%v", writerOnOther)
			done := make(chan string, 1)
			go func() {
				v, _ := reader.GetOrLoad(context.Background(), key, time.Minute, slow)
				done <- v
			}()
			select {
			case <-loading:
			case v := <-done:
				t.Fatalf("GetOrLoad answered %q without loading: the key was cached already", v)
			}
			db.Store("new")
			if err := writer.Invalidate(context.Background(), key); err != nil {
				t.Fatalf("Invalidate: %v", err)
			}
			close(release)
			if got := <-done; got != "old" {
				t.Fatalf("the read that began before the write got %q, want old", got)
			}
			if got := mustGet(t, writer, key, current); got != "new" {
				t.Fatalf("writer's server after the slow fill: got %q, want new (stale fill survived)", got)
			}
			agree(t, reader, key, current, "new", opts)
			agree(t, other, key, current, "new", opts)
		})
	}
}

// testConcurrentWrites races writers (database write, then invalidate,
// through random servers) against readers whose loads are slowed at random
// on every server. Once the writers stop, every server must answer the
// database's final value for every key.
func testConcurrentWrites(t *testing.T, newServer func() cache.Store, opts Options) {
	const keys, servers, writes, readers = 4, 3, 60, 3
	caches := make([]*cache.Cache[int], servers)
	for i := range caches {
		caches[i] = NewCache[int](t, newServer())
	}
	var db [keys]atomic.Int64
	load := func(k int) cache.Loader[int] {
		return func(context.Context) (int, error) {
			v := db[k].Load()
			time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
			return int(v), nil
		}
	}
	key := func(k int) string { return fmt.Sprintf("row:%d", k) }
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, c := range caches {
		for range readers {
			wg.Go(func() {
				for i := 0; i < 2000 && !stop.Load() && ctx.Err() == nil; i++ {
					k := rand.IntN(keys)
					_, _ = c.GetOrLoad(ctx, key(k), time.Minute, load(k))
				}
			})
		}
	}
	for i := range writes {
		k := rand.IntN(keys)
		db[k].Add(1)
		if err := caches[i%servers].Invalidate(ctx, key(k)); err != nil {
			t.Fatalf("Invalidate: %v", err)
		}
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	}
	stop.Store(true)
	wg.Wait()
	for k := range keys {
		want := int(db[k].Load())
		for i, c := range caches {
			if !opts.Eventual {
				if got := mustGet(t, c, key(k), load(k)); got != want {
					t.Errorf("server %d, %s: got %d, want %d (stale value survived a write)", i, key(k), got, want)
				}
				continue
			}
			agree(t, c, key(k), load(k), want, opts)
		}
	}
}
