package shard

import (
	"context"
	"errors"
	"testing"
	"time"
)

var passengersDDL = []string{
	`CREATE TABLE IF NOT EXISTS {shard}.passengers (id BIGINT PRIMARY KEY, flight_id BIGINT NOT NULL, name TEXT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS {shard}.bookings (passenger_id BIGINT PRIMARY KEY, flight_id BIGINT NOT NULL, seat TEXT NOT NULL)`,
}

func TestSQLiteShards(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, closeAll, err := OpenSQLite(ctx, SQLiteConfig{Dir: t.TempDir(), Shards: 4, DDL: passengersDDL})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	if err := r.ExecReference(ctx, "CREATE TABLE IF NOT EXISTS airports (code TEXT PRIMARY KEY, city TEXT)"); err != nil {
		t.Fatal(err)
	}
	if err := r.ExecReference(ctx, "INSERT INTO airports VALUES ('JFK', 'New York') ON CONFLICT DO NOTHING"); err != nil {
		t.Fatal(err)
	}
	// Passengers and their bookings are co-located by flight: one
	// transaction writes both.
	for id := int64(1); id <= 40; id++ {
		flight := id % 10
		err := r.Tx(ctx, IntKey(flight), func(tx *Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO {shard}.passengers VALUES ($1, $2, $3)", id, flight, "p"); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO {shard}.bookings VALUES ($1, $2, $3)", id, flight, "1A")
			return err
		})
		if err != nil {
			t.Fatalf("book passenger %d on flight %d: %v", id, flight, err)
		}
	}
	// Every flight's passengers are on one shard, joined with the
	// reference table there.
	for flight := int64(0); flight < 10; flight++ {
		var n int
		var city string
		err := r.QueryRow(ctx, IntKey(flight), `SELECT COUNT(*), MAX(a.city) FROM {shard}.passengers p
			JOIN {shard}.bookings b ON b.passenger_id = p.id JOIN airports a ON a.code = 'JFK' WHERE p.flight_id = $1`, flight).Scan(&n, &city)
		if err != nil || n != 4 || city != "New York" {
			t.Errorf("flight %d: %d passengers in %q, err %v; want 4 in New York", flight, n, city, err)
		}
	}
	res, err := r.Scatter(ctx, ScatterQuery{
		SQL:     "SELECT id, flight_id FROM {shard}.passengers ORDER BY id DESC LIMIT 5",
		OrderBy: []Order{{Column: 0, Desc: true}},
		Limit:   5,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 5 || res.Partial {
		t.Fatalf("scatter: %d rows, partial %v; want 5, false", len(res.Rows), res.Partial)
	}
	for i, row := range res.Rows {
		if got, want := row[0].(int64), int64(40-i); got != want {
			t.Errorf("scatter row %d: id %d, want %d", i, got, want)
		}
	}
	// A shard whose table is missing makes the read fail, or, if allowed,
	// come back marked partial.
	victim := r.ShardOf(IntKey(3))
	if _, err := r.target(r.Map(), victim).phys.exec(ctx, "ALTER TABLE passengers RENAME TO passengers_gone"); err != nil {
		t.Fatal(err)
	}
	q := ScatterQuery{SQL: "SELECT id FROM {shard}.passengers", OrderBy: []Order{{Column: 0}}}
	if _, err := r.Scatter(ctx, q); !errors.Is(err, ErrPartial) {
		t.Errorf("scatter with a broken shard: error %v, want ErrPartial", err)
	}
	q.AllowPartial = true
	res, err = r.Scatter(ctx, q)
	if err != nil || !res.Partial || len(res.Failed) != 1 || res.Failed[0].Shard != victim {
		t.Fatalf("partial scatter: %+v, %v; want Partial with shard %d failed", res, err, victim)
	}
	if st := r.Stats(); st.Scatters != 3 || st.Partial != 1 || st.FailedShards != 2 || st.Writes != 40 {
		t.Errorf("stats %+v, want 3 scatters, 1 partial, 2 failed shard parts, 40 writes", st)
	}
	if len(res.Rows) >= 40 {
		t.Errorf("partial scatter returned %d rows, want fewer than 40", len(res.Rows))
	}
}

// TestStaleWait: a write refused by the fence waits for a newer map through
// Reload; if none comes within StaleWait, the refusal is returned and
// nothing is written.
func TestStaleWait(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base, closeAll, err := OpenSQLite(ctx, SQLiteConfig{Dir: t.TempDir(), Shards: 2, DDL: passengersDDL})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	reloads := 0
	r, err := New(Config{Map: base.Map(), Physical: base.cfg.Physical, StaleWait: 300 * time.Millisecond,
		Reload: func(context.Context) (*Map, error) { reloads++; return base.Map(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	k := IntKey(1)
	s := r.ShardOf(k)
	// The shard "moved away": its fence row says so.
	if _, err := r.target(r.Map(), s).phys.exec(ctx, "UPDATE "+FenceTable+" SET owned = 0, epoch = 2 WHERE shard = $1", s); err != nil {
		t.Fatal(err)
	}
	_, err = r.Exec(ctx, k, "INSERT INTO {shard}.passengers VALUES (1, 1, 'x')")
	if !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("write to a fenced shard: %v, want ErrStaleEpoch", err)
	}
	if reloads < 2 {
		t.Errorf("Reload called %d times within StaleWait, want it polled", reloads)
	}
	var n int
	if err := r.QueryRow(ctx, k, "SELECT count(*) FROM {shard}.passengers").Scan(&n); err != nil || n != 0 {
		t.Errorf("refused write left %d rows (err %v), want 0", n, err)
	}
	if st := r.Stats(); st.Stale != 1 || st.Writes != 0 {
		t.Errorf("stats %+v, want 1 stale refusal and no write", st)
	}
}
