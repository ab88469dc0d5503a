package pgstore_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"scaleout/internal/testserver"
	"scaleout/session"
	"scaleout/session/pgstore"
	"scaleout/session/sessiontest"
)

func newStore(t testing.TB) *pgstore.Store {
	t.Helper()
	pg := testserver.Postgres(t)
	pool, err := pgxpool.New(context.Background(), pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st, err := pgstore.New(context.Background(), pgstore.Config{Pool: pool})
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
	if _, err := pgstore.New(context.Background(), pgstore.Config{}); err == nil {
		t.Error("New without Pool succeeded")
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	sessiontest.BenchmarkStore(b, newStore(b))
}
