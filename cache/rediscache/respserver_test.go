package rediscache_test

import (
	"testing"

	"scaleout/cache/cachetest"
)

// TestConformanceEmbedded runs the same suite as TestConformanceRedis
// against the embedded server that `scaleout up` uses.
func TestConformanceEmbedded(t *testing.T) {
	t.Parallel()
	cachetest.TestStore(t, ServersAt(cachetest.Embedded), cachetest.Options{})
}

func BenchmarkHitEmbedded(b *testing.B) { cachetest.BenchmarkHit(b, ServersAt(cachetest.Embedded)) }
func BenchmarkStampedeEmbedded(b *testing.B) {
	cachetest.BenchmarkStampede(b, ServersAt(cachetest.Embedded))
}
