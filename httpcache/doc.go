// Package httpcache is HTTP caching for scaleout, both ends of it.
//
// For app servers it sets Cache-Control deliberately (Policy), computes
// strong or weak ETags from content or from a version the handler supplies
// (ETagger, ContentETag, VersionETag), and evaluates conditional requests in
// the order RFC 9110 section 13.2.2 prescribes (CheckPreconditions): 304 Not
// Modified for If-None-Match and If-Modified-Since, 412 Precondition Failed
// for If-Match and If-Unmodified-Since.
//
// For the balancer it is a shared cache following RFC 9111 (Shared): an
// http.RoundTripper wrapped around the one that forwards to the pool, with
// freshness, validation, Vary, invalidation, stale-while-revalidate and
// stale-if-error (RFC 5861), Cache-Status (RFC 9211), collapsed misses,
// purge by URL and by tag, and a memory bound enforced by otter's W-TinyLFU
// eviction with entries weighed in bytes.
package httpcache

import "errors"

// Errors returned by this package, matched with errors.Is.
var (
	// ErrBadETag is returned for a value that is not an entity-tag.
	ErrBadETag = errors.New("not an entity-tag")
	// ErrBadConfig is returned by constructors for an invalid Config.
	ErrBadConfig = errors.New("invalid httpcache config")
	// ErrNotCached is the cause of the 504 answered to an only-if-cached
	// request that the cache cannot satisfy (RFC 9111 section 5.2.1.7).
	ErrNotCached = errors.New("not in cache")
	// ErrBadPurge is returned by PurgeURL for a URL that cannot name an entry.
	ErrBadPurge = errors.New("bad purge request")
)
