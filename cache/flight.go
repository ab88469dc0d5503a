package cache

import (
	"slices"
	"sync"
)

// flight merges concurrent loads of one key inside this process, as
// golang/groupcache's singleflight does, with one addition: an invalidation
// detaches the loads in flight for its keys or tags, so a read that starts
// after the invalidation never joins a load that may have read the old value.
type flight[V any] struct {
	// mu guards calls.
	mu    sync.Mutex
	calls map[string]*call[V]
}

// call is one load in flight; done is closed when v and err are set.
type call[V any] struct {
	done chan struct{}
	tags []string
	v    V
	err  error
}

// join returns the call in flight for key, or starts one; leader reports
// whether the caller started it and must finish it.
func (f *flight[V]) join(key string, tags []string) (c *call[V], leader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.calls[key]; ok {
		return c, false
	}
	if f.calls == nil {
		f.calls = make(map[string]*call[V])
	}
	c = &call[V]{done: make(chan struct{}), tags: tags}
	f.calls[key] = c
	return c, true
}

// busy reports whether a load of key is in flight.
func (f *flight[V]) busy(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.calls[key]
	return ok
}

// finish publishes the leader's result and removes the call, unless an
// invalidation removed it already.
func (f *flight[V]) finish(key string, c *call[V], v V, err error) {
	c.v, c.err = v, err
	f.mu.Lock()
	if f.calls[key] == c {
		delete(f.calls, key)
	}
	f.mu.Unlock()
	close(c.done)
}

// forget detaches the calls for keys: their leaders finish, but nobody new
// joins them.
func (f *flight[V]) forget(keys []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		delete(f.calls, k)
	}
}

// forgetTags detaches the calls whose entries carry one of tags.
func (f *flight[V]) forgetTags(tags []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, c := range f.calls {
		for _, t := range c.tags {
			if slices.Contains(tags, t) {
				delete(f.calls, k)
				break
			}
		}
	}
}
