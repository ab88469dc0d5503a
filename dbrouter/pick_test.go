package dbrouter

import (
	"context"
	"database/sql"
	"testing"

	_ "modernc.org/sqlite"
)

// BenchmarkPick measures the routing decision alone (no I/O): choosing a
// replica for a read-only query, with and without a session token that a
// replica has replayed.
func BenchmarkPick(b *testing.B) {
	db, err := sql.Open("sqlite", ":memory:") // never connected: pick does no I/O
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	r, err := New(Config{Primary: db, Replicas: []ReplicaConfig{{DB: db}, {DB: db}, {DB: db}}})
	if err != nil {
		b.Fatal(err)
	}
	for _, rep := range r.replicas {
		rep.replayed.Store(100)
	}
	for _, bc := range []struct {
		name string
		ctx  context.Context
	}{
		{"no-token", ReadOnly(context.Background())},
		{"token", ReadOnly(WithSession(context.Background(), NewSession(Token{LSN: 50})))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if rep, err := r.pick(bc.ctx); rep == nil || err != nil {
					b.Fatal("no replica picked", err)
				}
			}
		})
	}
}
