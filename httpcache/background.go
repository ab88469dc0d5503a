package httpcache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
)

// ErrRunning is returned by Run when the cache is already running.
var ErrRunning = errors.New("httpcache: Run already running")

// bgJob is a background revalidation for stale-while-revalidate.
type bgJob struct {
	req *http.Request
	e   *entry
}

// Run performs background revalidations (RFC 5861 stale-while-revalidate)
// on Config.Revalidators goroutines until ctx is done, then waits for them
// and returns nil. Without Run, a response inside its stale-while-revalidate
// window is revalidated in the request that finds it stale. Call Run once.
func (s *Shared) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	var wg sync.WaitGroup
	for range s.workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-s.bg:
					s.backgroundRevalidate(ctx, j)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// enqueue queues a background revalidation of e for req, unless one is
// queued already. It reports false when nothing runs them (no Run), so
// the caller revalidates itself; a full queue still reports true: serving
// the stale response is allowed, and a later request will queue again.
func (s *Shared) enqueue(req *http.Request, e *entry) bool {
	if !s.running.Load() {
		return false
	}
	s.bgMu.Lock()
	if _, ok := s.bgKeys[e.key]; ok {
		s.bgMu.Unlock()
		return true
	}
	s.bgKeys[e.key] = struct{}{}
	s.bgMu.Unlock()
	// The client's request ends when it is answered: keep only what
	// selects the variant, under Run's context.
	bgReq := req.Clone(context.Background())
	bgReq.Method = http.MethodGet
	bgReq.Header.Del("If-None-Match")
	bgReq.Header.Del("If-Modified-Since")
	bgReq.Header.Del("Cache-Control")
	bgReq.Header.Del("Pragma")
	select {
	case s.bg <- bgJob{req: bgReq, e: e}:
	default:
		s.bgMu.Lock()
		delete(s.bgKeys, e.key)
		s.bgMu.Unlock()
	}
	return true
}

func (s *Shared) backgroundRevalidate(ctx context.Context, j bgJob) {
	defer func() {
		s.bgMu.Lock()
		delete(s.bgKeys, j.e.key)
		s.bgMu.Unlock()
	}()
	req := j.req.WithContext(ctx)
	res, err := s.revalidate(req, NoDirectives(), j.e, false)
	if err != nil {
		s.log.Warn("background revalidation failed", "key", j.e.primary, "err", err)
		return
	}
	// Reading the body to its end is what stores a full response.
	drainAll(res)
}

// PurgeURL removes every stored response for an absolute URL (all its Vary
// variants) and returns how many entries went. Safe for concurrent use; the
// next request for the URL is a miss.
func (s *Shared) PurgeURL(rawURL string) (int, error) {
	if err := checkPurgeURL(rawURL); err != nil {
		return 0, err
	}
	u, _ := url.Parse(rawURL)
	req := &http.Request{URL: u, Host: u.Host}
	return s.purgeKey(primaryKey(req)), nil
}

func checkPurgeURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("purge %q: %w: %w", rawURL, ErrBadPurge, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("purge %q: %w: need an absolute http or https URL", rawURL, ErrBadPurge)
	}
	return nil
}

// PurgeTag removes every stored response tagged with tag by one of the
// Config.TagHeaders fields and returns how many entries went.
func (s *Shared) PurgeTag(tag string) int {
	n := 0
	for _, k := range s.idx.keys(true, tag) {
		if _, ok := s.store.Invalidate(k); ok {
			n++
		}
	}
	s.purged.Add(uint64(n))
	return n
}

// purgeKey removes the entry at a primary key and all its variants.
func (s *Shared) purgeKey(primary string) int {
	n := 0
	if _, ok := s.store.Invalidate(primary); ok {
		n++
	}
	for _, k := range s.idx.keys(false, primary) {
		if _, ok := s.store.Invalidate(k); ok {
			n++
		}
	}
	s.purged.Add(uint64(n))
	return n
}
