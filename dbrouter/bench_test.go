package dbrouter_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"scaleout/dbrouter"
)

// BenchmarkRead compares one point read on the same replica through raw
// pgx, through database/sql directly, and through the router (without a
// token, and with a session token the replica has already replayed). Run:
//
//	go test -run NONE -bench BenchmarkRead -benchtime 20000x ./dbrouter/
func BenchmarkRead(b *testing.B) {
	c := startCluster(b, 1)
	mustExec(b, c.primaryDB, "CREATE TABLE kv (k bigint PRIMARY KEY, v bigint NOT NULL)")
	mustExec(b, c.primaryDB, "INSERT INTO kv SELECT g, g FROM generate_series(1, 1000) g")
	c.waitReplicated(b, 1000, 1000)
	ctx := context.Background()
	c.replicaDBs[0].SetMaxOpenConns(1) // one connection each, like the raw pgx.Conn
	r := c.router(b, dbrouter.Config{})
	const q = "SELECT v FROM kv WHERE k = $1"

	b.Run("pgx", func(b *testing.B) {
		conn, err := pgx.Connect(ctx, c.replicas[0].DSN("postgres"))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		var v int64
		for i := 0; b.Loop(); i++ {
			if err := conn.QueryRow(ctx, q, int64(i%1000+1)).Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("database-sql", func(b *testing.B) {
		var v int64
		for i := 0; b.Loop(); i++ {
			if err := c.replicaDBs[0].QueryRowContext(ctx, q, int64(i%1000+1)).Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("router", func(b *testing.B) {
		rctx := dbrouter.ReadOnly(ctx)
		var v int64
		for i := 0; b.Loop(); i++ {
			if err := r.QueryRowContext(rctx, q, int64(i%1000+1)).Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Interleaved: the three paths take turns query by query, in rotating
	// order, so a burst of
	// load from other processes hits them alike; the medians of their
	// per-query times are reported. This is the figure to compare.
	b.Run("interleaved", func(b *testing.B) {
		conn, err := pgx.Connect(ctx, c.replicas[0].DSN("postgres"))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		rctx := dbrouter.ReadOnly(ctx)
		var v int64
		paths := []func(k int64) error{
			func(k int64) error { return conn.QueryRow(ctx, q, k).Scan(&v) },
			func(k int64) error { return c.replicaDBs[0].QueryRowContext(ctx, q, k).Scan(&v) },
			func(k int64) error { return r.QueryRowContext(rctx, q, k).Scan(&v) },
		}
		times := make([][]time.Duration, len(paths))
		for i := 0; b.Loop(); i++ {
			for j := range paths {
				p := (i + j) % len(paths) // rotate the order: no path always goes first
				f := paths[p]
				start := time.Now()
				if err := f(int64(i%1000 + 1)); err != nil {
					b.Fatal(err)
				}
				times[p] = append(times[p], time.Since(start))
			}
		}
		med := func(p int) float64 { return float64(quantile(times[p], 0.5).Nanoseconds()) }
		b.ReportMetric(med(0), "ns-pgx")
		b.ReportMetric(med(1), "ns-sql")
		b.ReportMetric(med(2), "ns-router")
		b.ReportMetric((med(2)/med(1)-1)*100, "%over-sql")
		b.ReportMetric((med(2)/med(0)-1)*100, "%over-pgx")
	})
	b.Run("router-token", func(b *testing.B) {
		s := &dbrouter.Session{}
		if _, err := r.ExecContext(dbrouter.WithSession(ctx, s), "UPDATE kv SET v = v WHERE k = 1"); err != nil {
			b.Fatal(err)
		}
		rctx := dbrouter.ReadOnly(dbrouter.WithSession(ctx, s))
		var v int64
		for i := 0; b.Loop(); i++ {
			if err := r.QueryRowContext(rctx, q, int64(i%1000+1)).Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWriteThenRead is the read-your-writes cycle: an update on the
// primary and an immediate read of it. "direct" reads the replica at once
// and reports how many reads were stale; "router" carries a session token
// and must report none; the difference in read latency (p50, p99) is the
// wait for a replica to replay the write, and in write latency the position
// query. Run:
//
//	go test -run NONE -bench BenchmarkWriteThenRead -benchtime 3000x ./dbrouter/
func BenchmarkWriteThenRead(b *testing.B) {
	c := startCluster(b, 1)
	mustExec(b, c.primaryDB, "CREATE TABLE kv (k bigint PRIMARY KEY, v bigint NOT NULL)")
	mustExec(b, c.primaryDB, "INSERT INTO kv VALUES (1, 0)")
	c.waitReplicated(b, 1, 0)
	ctx := context.Background()
	run := func(b *testing.B, write func(int64) error, read func() (int64, error)) {
		stale := 0
		i := int64(0)
		var writes, reads []time.Duration
		for b.Loop() {
			i++
			start := time.Now()
			if err := write(i); err != nil {
				b.Fatal(err)
			}
			mid := time.Now()
			v, err := read()
			if err != nil {
				b.Fatal(err)
			}
			reads = append(reads, time.Since(mid))
			writes = append(writes, mid.Sub(start))
			if v != i {
				stale++
			}
		}
		us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
		b.ReportMetric(float64(stale)/float64(b.N)*100, "%stale")
		b.ReportMetric(us(quantile(writes, 0.5)), "µs-write-p50")
		b.ReportMetric(us(quantile(reads, 0.5)), "µs-read-p50")
		b.ReportMetric(us(quantile(reads, 0.99)), "µs-read-p99")
	}
	// The write alone, interleaved in rotating order: database/sql directly,
	// the router without a session (no token), the router with one (one
	// extra round trip for the position).
	b.Run("write-interleaved", func(b *testing.B) {
		r := c.router(b, dbrouter.Config{})
		sctx := dbrouter.WithSession(ctx, &dbrouter.Session{})
		const q = "UPDATE kv SET v = v + 1 WHERE k = 1"
		paths := []func() error{
			func() error { _, err := c.primaryDB.ExecContext(ctx, q); return err },
			func() error { _, err := r.ExecContext(ctx, q); return err },
			func() error { _, err := r.ExecContext(sctx, q); return err },
		}
		times := make([][]time.Duration, len(paths))
		for i := 0; b.Loop(); i++ {
			for j := range paths {
				p := (i + j) % len(paths)
				start := time.Now()
				if err := paths[p](); err != nil {
					b.Fatal(err)
				}
				times[p] = append(times[p], time.Since(start))
			}
		}
		for p, name := range []string{"µs-sql", "µs-router", "µs-router-token"} {
			b.ReportMetric(float64(quantile(times[p], 0.5).Nanoseconds())/1e3, name)
		}
	})
	b.Run("direct", func(b *testing.B) {
		run(b, func(i int64) error {
			_, err := c.primaryDB.ExecContext(ctx, "UPDATE kv SET v = $1 WHERE k = 1", i)
			return err
		}, func() (int64, error) {
			var v int64
			return v, c.replicaDBs[0].QueryRowContext(ctx, "SELECT v FROM kv WHERE k = 1").Scan(&v)
		})
	})
	b.Run("router", func(b *testing.B) {
		r := c.router(b, dbrouter.Config{FallbackRate: -1})
		sctx := dbrouter.WithSession(ctx, &dbrouter.Session{})
		run(b, func(i int64) error {
			_, err := r.ExecContext(sctx, "UPDATE kv SET v = $1 WHERE k = 1", i)
			return err
		}, func() (int64, error) {
			var v int64
			return v, r.QueryRowContext(dbrouter.ReadOnly(sctx), "SELECT v FROM kv WHERE k = 1").Scan(&v)
		})
		st := r.Stats()
		b.ReportMetric(float64(st.Fallbacks)/float64(b.N)*100, "%primary")
		b.ReportMetric(float64(st.WaitTime.Microseconds())/float64(b.N), "µs-wait/op")
		b.ReportMetric(float64(st.Waits)/float64(b.N)*100, "%waited")
	})
}
