package shard

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"
)

// BenchmarkSingleShardOverhead compares a point read through the shard
// router (key -> shard -> database, {shard} expanded) with the same read
// sent straight to the right database and schema. The two alternate in one
// loop so that load on the shared machine hits both alike; the metrics are
// each one's median latency and the overhead in percent (target: under 5).
func BenchmarkSingleShardOverhead(b *testing.B) {
	c := startPG(b)
	r, dbs, _ := c.router(b, "bench_single", 8, Config{})
	ctx := context.Background()
	k := keyOn(r.Map(), 2)
	if _, err := r.Exec(ctx, k, "INSERT INTO {shard}.passengers VALUES (1, $1, 'Alice')", k.i); err != nil {
		b.Fatal(err)
	}
	direct := dbs[0] // shard 2 is on pg0
	directSQL := "SELECT name FROM " + SchemaName(2) + ".passengers WHERE id = $1"
	routedSQL := "SELECT name FROM {shard}.passengers WHERE id = $1"
	var name string
	d := make([]time.Duration, 0, b.N)
	rt := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := direct.QueryRowContext(ctx, directSQL, 1).Scan(&name); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := r.QueryRow(ctx, k, routedSQL, 1).Scan(&name); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		d, rt = append(d, t1.Sub(t0)), append(rt, t2.Sub(t1))
	}
	b.StopTimer()
	md, mr := median(d), median(rt)
	b.ReportMetric(float64(md)/1e3, "direct-µs")
	b.ReportMetric(float64(mr)/1e3, "routed-µs")
	b.ReportMetric(100*(float64(mr)-float64(md))/float64(md), "overhead-%")
}

// BenchmarkScatter8 scatters a read over 8 shards on two servers, shard i
// taking (i+1)*5ms (pg_sleep), and compares it with the slowest shard
// queried alone, alternating in one loop. Metrics: medians of both, and
// their difference (target: a small constant, the merge and fan-out).
func BenchmarkScatter8(b *testing.B) {
	c := startPG(b)
	r, dbs, _ := c.router(b, "bench_scatter", 8, Config{MaxConcurrency: 8})
	ctx := context.Background()
	for s := range 8 {
		k := keyOn(r.Map(), s)
		for j := range 20 {
			if _, err := r.Exec(ctx, k, "INSERT INTO {shard}.passengers VALUES ($1, $2, 'p')", int64(s*100+j), k.i); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Warm a connection per shard so the loop does not measure dials.
	for _, db := range dbs {
		db.SetMaxIdleConns(8)
	}
	const q = "SELECT id, name FROM {shard}.passengers, pg_sleep(0.005 * (1 + right('{shard}', 4)::int)) ORDER BY id DESC LIMIT 10"
	sq := ScatterQuery{SQL: q, OrderBy: []Order{{Column: 0, Desc: true}}, Limit: 10}
	slowest := keyOn(r.Map(), 7)
	for range 3 {
		if _, err := r.Scatter(ctx, sq); err != nil {
			b.Fatal(err)
		}
	}
	sc := make([]time.Duration, 0, b.N)
	one := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		res, err := r.Scatter(ctx, sq)
		if err != nil || len(res.Rows) != 10 {
			b.Fatalf("scatter: %v", err)
		}
		t1 := time.Now()
		rows, err := r.Query(ctx, slowest, q)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
		t2 := time.Now()
		sc, one = append(sc, t1.Sub(t0)), append(one, t2.Sub(t1))
	}
	b.StopTimer()
	ms, mo := median(sc), median(one)
	b.ReportMetric(float64(ms)/1e3, "scatter8-µs")
	b.ReportMetric(float64(mo)/1e3, "slowest-µs")
	b.ReportMetric(float64(ms-mo)/1e3, "extra-µs")
}

// BenchmarkShardOf is the routing decision alone: jump hash of a key.
func BenchmarkShardOf(b *testing.B) {
	fn, _ := NewJump(64)
	m, _ := NewMap(1, fn, make64("pg"))
	for i := 0; b.Loop(); i++ {
		_ = m.Shard(IntKey(int64(i)))
	}
}

func make64(p string) []string {
	out := make([]string, 64)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", p, i%4)
	}
	return out
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
