package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"scaleout/dbrouter"
	"scaleout/dbrouter/keys"
	"scaleout/internal/testserver"
)

// pgCluster is two PostgreSQL servers with wal_level=logical (either can be
// a move's source), shared by the subtests of TestPostgres, each of which
// uses its own database on both.
type pgCluster struct {
	servers [2]*testserver.PostgresServer
}

func startPG(t testing.TB) *pgCluster {
	t.Helper()
	var c pgCluster
	for i := range c.servers {
		c.servers[i] = testserver.StartPostgres(t, testserver.PostgresConfig{Settings: []string{"wal_level=logical", "max_wal_senders=20", "max_replication_slots=20"}})
	}
	return &c
}

// router creates database dbname on both servers and a shard router over
// them: n logical shards by jump hash, alternating between "pg0" and "pg1".
// It returns the router, the pools and the DSNs.
func (c *pgCluster) router(t testing.TB, dbname string, n int, cfg Config) (*Router, [2]*sql.DB, [2]string) {
	t.Helper()
	var dbs [2]*sql.DB
	var dsns [2]string
	var phys []Physical
	for i, s := range c.servers {
		dsns[i] = s.CreateDB(t, dbname)
		db, err := sql.Open("pgx", dsns[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
		phys = append(phys, Physical{Name: fmt.Sprintf("pg%d", i), DB: db})
	}
	fn, _ := NewJump(n)
	placement := make([]string, n)
	for i := range placement {
		placement[i] = fmt.Sprintf("pg%d", i%2)
	}
	m, err := NewMap(1, fn, placement)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Map, cfg.Physical = m, phys
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Provision(ctx, passengersDDL...); err != nil {
		t.Fatal(err)
	}
	return r, dbs, dsns
}

// keyOn returns an integer key that the map places on logical shard s.
func keyOn(m *Map, s int) Key {
	for i := int64(1); ; i++ {
		if m.Shard(IntKey(i)) == s {
			return IntKey(i)
		}
	}
}

func TestPostgres(t *testing.T) {
	c := startPG(t)
	t.Run("Routing", func(t *testing.T) { testPGRouting(t, c) })
	t.Run("ScatterTimeout", func(t *testing.T) { testPGScatterTimeout(t, c) })
	t.Run("MoveUnderLoad", func(t *testing.T) { testPGMove(t, c) })
}

// testPGRouting: rows land on the database the map names, in the shard's
// schema, co-located tables commit together, reference tables reach every
// database, and a shard behind a dbrouter.Router works the same.
func testPGRouting(t *testing.T, c *pgCluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, dbs, _ := c.router(t, "routing", 8, Config{})
	if err := r.ExecReference(ctx, "CREATE TABLE IF NOT EXISTS airports (code TEXT PRIMARY KEY, city TEXT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if err := r.ExecReference(ctx, "INSERT INTO airports VALUES ('LHR', 'London') ON CONFLICT (code) DO UPDATE SET city = EXCLUDED.city"); err != nil {
		t.Fatal(err)
	}
	for flight := int64(1); flight <= 16; flight++ {
		err := r.Tx(ctx, IntKey(flight), func(tx *Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO {shard}.passengers VALUES ($1, $2, 'p')", flight*100, flight); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO {shard}.bookings VALUES ($1, $2, '2B')", flight*100, flight)
			return err
		})
		if err != nil {
			t.Fatalf("flight %d: %v", flight, err)
		}
	}
	for flight := int64(1); flight <= 16; flight++ {
		s := r.ShardOf(IntKey(flight))
		db := dbs[s%2]
		var n int
		q := fmt.Sprintf("SELECT count(*) FROM %s.passengers p JOIN %s.bookings b ON b.passenger_id = p.id JOIN airports a ON a.code = 'LHR' WHERE p.flight_id = $1", SchemaName(s), SchemaName(s))
		if err := db.QueryRowContext(ctx, q, flight).Scan(&n); err != nil || n != 1 {
			t.Errorf("flight %d on shard %d: %d joined rows on pg%d (err %v), want 1", flight, s, n, s%2, err)
		}
	}
	// The same shard behind a replication-group router (here without
	// replicas): reads and fenced writes go through it.
	rr, err := dbrouter.New(dbrouter.Config{Primary: dbs[0]})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := New(Config{Map: r.Map(), Physical: []Physical{{Name: "pg0", Router: rr}, {Name: "pg1", DB: dbs[1]}}})
	if err != nil {
		t.Fatal(err)
	}
	k := keyOn(r.Map(), 0)
	if _, err := r2.Exec(ctx, k, "INSERT INTO {shard}.passengers VALUES (9999, $1, 'via router')", k.i); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := r2.QueryRow(dbrouter.ReadOnly(ctx), k, "SELECT name FROM {shard}.passengers WHERE id = 9999").Scan(&name); err != nil || name != "via router" {
		t.Errorf("read through dbrouter: %q, %v", name, err)
	}
}

// testPGScatterTimeout: one shard slower than ShardTimeout fails the read,
// or, if allowed, leaves it marked Partial with that shard named.
func testPGScatterTimeout(t *testing.T, c *pgCluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, _, _ := c.router(t, "scatter", 8, Config{ShardTimeout: 2 * time.Second, MaxConcurrency: 3})
	for s := range 8 {
		k := keyOn(r.Map(), s)
		if _, err := r.Exec(ctx, k, "INSERT INTO {shard}.passengers VALUES ($1, $2, 'p')", int64(s), k.i); err != nil {
			t.Fatal(err)
		}
	}
	q := ScatterQuery{
		SQL:     "SELECT id, pg_sleep(CASE WHEN '{shard}' = 'shard_0005' THEN 30 ELSE 0 END)::text FROM {shard}.passengers ORDER BY id DESC LIMIT 3",
		OrderBy: []Order{{Column: 0, Desc: true}},
		Limit:   3,
	}
	if _, err := r.Scatter(ctx, q); !errors.Is(err, ErrPartial) {
		t.Fatalf("scatter with a stuck shard: %v, want ErrPartial", err)
	}
	q.AllowPartial = true
	res, err := r.Scatter(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Partial || len(res.Failed) != 1 || res.Failed[0].Shard != 5 {
		t.Fatalf("partial result: partial %v failed %v, want shard 5 failed", res.Partial, res.Failed)
	}
	var got []int64
	for _, row := range res.Rows {
		got = append(got, row[0].(int64))
	}
	if fmt.Sprint(got) != "[7 6 4]" {
		t.Errorf("partial rows %v, want [7 6 4] (shard 5 missing)", got)
	}
}

// testPGMove moves a shard from pg1 to pg0 while writers keep inserting into
// it. Writers hold a router whose Reload returns the published map, so a
// refused write is retried at the new place; a second router keeps the old
// map and must be refused. Every acknowledged write must be on the
// destination, and the source must hold nothing the destination lacks.
func testPGMove(t *testing.T, c *pgCluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var published atomic.Pointer[Map]
	reload := func(context.Context) (*Map, error) { return published.Load(), nil }
	r, dbs, dsns := c.router(t, "move", 8, Config{Reload: reload})
	published.Store(r.Map())
	stale, err := New(Config{Map: r.Map(), Physical: []Physical{{Name: "pg0", DB: dbs[0]}, {Name: "pg1", DB: dbs[1]}}})
	if err != nil {
		t.Fatal(err)
	}
	const moved = 3 // on pg1
	k := keyOn(r.Map(), moved)
	gen, _ := keys.NewSnowflake(keys.Config{Node: moved})
	// Some rows before the move, so the copy has work.
	for range 500 {
		if _, err := r.Exec(ctx, k, "INSERT INTO {shard}.passengers VALUES ($1, $2, 'before')", gen.Next(), k.i); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	acked := map[int64]bool{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; i < 20000; i++ {
				select {
				case <-done:
					return
				default:
				}
				id := gen.Next()
				_, err := r.Exec(ctx, k, "INSERT INTO {shard}.passengers VALUES ($1, $2, 'during')", id, k.i)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		})
	}
	var phases []string
	nm, err := r.MovePostgres(ctx, Move{
		Shard: moved, To: "pg0", SourceConninfo: dsns[1], DDL: passengersDDL, FenceTimeout: 90 * time.Second,
		Progress: func(p Progress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
				t.Logf("move: %+v", p)
			}
		},
	})
	if err != nil {
		close(done)
		wg.Wait()
		t.Fatalf("move: %v (phases %v)", err, phases)
	}
	published.Store(nm)
	// Keep writing a little after the cutover: through the new map.
	time.Sleep(time.Second)
	close(done)
	wg.Wait()
	if nm.Epoch() != 2 || nm.Placement(moved) != "pg0" || r.Map().Epoch() != 2 {
		t.Fatalf("after move: map epoch %d placement %s, router epoch %d; want 2, pg0, 2", nm.Epoch(), nm.Placement(moved), r.Map().Epoch())
	}
	// The stale router still sends the shard to pg1: refused, nothing applied.
	_, err = stale.Exec(ctx, k, "INSERT INTO {shard}.passengers VALUES (-1, $1, 'stale')", k.i)
	if !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("write through a router with the old map: %v, want ErrStaleEpoch", err)
	}
	if st := stale.Stats(); st.Stale != 1 || st.Writes != 0 || st.Epoch != 1 {
		t.Errorf("stale router stats %+v, want 1 stale refusal, 0 writes, epoch 1", st)
	}
	if st := r.Stats(); st.Epoch != 2 || st.Writes < uint64(len(acked)) {
		t.Errorf("writers' router stats %+v, want epoch 2 and at least %d writes", st, len(acked))
	}
	schema := SchemaName(moved)
	ids := func(db *sql.DB) map[int64]bool {
		rows, err := db.QueryContext(ctx, "SELECT id FROM "+schema+".passengers")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[int64]bool{}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out[id] = true
		}
		return out
	}
	src, dst := ids(dbs[1]), ids(dbs[0])
	lost := 0
	for id := range acked {
		if !dst[id] {
			lost++
		}
	}
	extra := 0
	for id := range src {
		if !dst[id] {
			extra++
		}
	}
	t.Logf("move: %d writes acknowledged during it, %d rows on the destination, %d left on the fenced source; phases %v", len(acked), len(dst), len(src), phases)
	if lost != 0 {
		t.Errorf("%d acknowledged writes missing on the destination", lost)
	}
	if extra != 0 || src[-1] {
		t.Errorf("%d rows on the source that the destination lacks (accepted after the fence)", extra)
	}
	if len(dst) != len(acked)+500 {
		t.Errorf("destination has %d rows, want %d (500 before + %d acknowledged)", len(dst), len(acked)+500, len(acked))
	}
	if len(acked) == 0 || len(dst) <= len(src) {
		t.Errorf("no write went to the destination after cutover (acked %d, src %d, dst %d): the load did not span the move", len(acked), len(src), len(dst))
	}
	// The publication and subscription are gone.
	var subs, pubs int
	dbs[0].QueryRowContext(ctx, "SELECT count(*) FROM pg_subscription").Scan(&subs)
	dbs[1].QueryRowContext(ctx, "SELECT count(*) FROM pg_publication").Scan(&pubs)
	if subs != 0 || pubs != 0 {
		t.Errorf("after the move: %d subscriptions, %d publications left, want 0", subs, pubs)
	}
}
