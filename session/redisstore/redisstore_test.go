package redisstore_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"scaleout/internal/testserver"
	"scaleout/session"
	"scaleout/session/redisstore"
	"scaleout/session/sessiontest"
)

func newStore(t testing.TB) *redisstore.Store {
	t.Helper()
	srv := testserver.Redis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	st, err := redisstore.New(redisstore.Config{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	sessiontest.TestStore(t, func(*testing.T) session.Store { return st })
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	if _, err := redisstore.New(redisstore.Config{}); err == nil {
		t.Error("New without Client succeeded")
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	sessiontest.BenchmarkStore(b, newStore(b))
}
