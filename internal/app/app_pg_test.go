package app

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"scaleout/dbrouter"
	"scaleout/dbrouter/shard"
	"scaleout/internal/testserver"
	"scaleout/session"
	"scaleout/session/memstore"
)

// TestReadYourBookingOnReplicas runs the app on a PostgreSQL primary and a
// replica that lags by 300ms: right after booking, the flight's page, read
// from "a replica", must already show the passenger, because the write's
// token travels in the user's session.
func TestReadYourBookingOnReplicas(t *testing.T) {
	t.Parallel()
	primary := testserver.Postgres(t)
	replica := testserver.PostgresReplica(t, primary)
	open := func(dsn string) *sql.DB {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	router, err := dbrouter.New(dbrouter.Config{
		Primary:  open(primary.DSN("postgres")),
		Replicas: []dbrouter.ReplicaConfig{{Name: "r1", DB: open(replica.DSN("postgres"))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := memstore.New(memstore.Config{})
	sm, err := session.New(session.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	fn, _ := shard.NewJump(4)
	m, _ := shard.NewMap(1, fn, []string{"main", "main", "main", "main"})
	pax, err := shard.New(shard.Config{Map: m, Physical: []shard.Physical{{Name: "main", Router: router}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pax.Provision(context.Background(), PassengerDDL); err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), Config{ID: "pg-app", DB: router, Postgres: true, Passengers: pax, Sessions: sm})
	if err != nil {
		t.Fatalf("app on PostgreSQL: %v", err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	testserver.PostgresSet(t, replica, "recovery_min_apply_delay", "2s")

	// A books and reads at once through its session; B, with no session,
	// reads right after: the replica, 2s behind, proves it does lag.
	a1, b1 := client(), client()
	stale := 0
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("Passenger%d", i)
		resp, body := fetch(t, a1, postForm(srv.URL+"/flights/2/book", url.Values{"name": {name}}))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, name) {
			t.Fatalf("booking %d: after the redirect the page (%d) lacks %s: a stale read", i, resp.StatusCode, name)
		}
		req, _ := http.NewRequest("GET", srv.URL+"/flights/2", nil)
		if _, body := fetch(t, b1, req); !strings.Contains(body, name) {
			stale++
		}
	}
	t.Logf("the booking user's own reads: 5 of 5 fresh; another user's reads right after: %d of 5 stale", stale)
	if stale == 0 {
		t.Errorf("no stale read without the token: the replica did not lag, so the test proves nothing")
	}
}
