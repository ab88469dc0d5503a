package pgstore_test

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"scaleout/session"
	"scaleout/session/pgstore"
)

// Sessions in PostgreSQL, shared by app servers on several machines.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db.internal:5432/app")
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	st, err := pgstore.New(ctx, pgstore.Config{Pool: pool})
	if err != nil {
		panic(err)
	}
	go session.RunCleanup(ctx, st, 5*time.Minute, nil)
	m, err := session.New(session.Config{Store: st, Generations: st})
	if err != nil {
		panic(err)
	}
	_ = m.Handler // wrap the app's handler with it
}
