package dbrouter_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"scaleout/dbrouter"
	"scaleout/internal/testserver"
)

// cluster is a PostgreSQL primary with streaming replicas, started by the
// test, with a database/sql pool on each.
type cluster struct {
	primary     *testserver.PostgresServer
	replicas    []*testserver.PostgresServer
	primaryDB   *sql.DB
	replicaDBs  []*sql.DB
	primaryPort int
}

// startCluster starts a primary with n replicas. The primary commits with
// synchronous_commit=on, as production does (the harness defaults it off).
func startCluster(t testing.TB, n int, primarySettings ...string) *cluster {
	t.Helper()
	c := &cluster{primary: testserver.StartPostgres(t, testserver.PostgresConfig{
		Settings: append([]string{"synchronous_commit=on"}, primarySettings...)})}
	c.primaryPort = c.primary.Port
	c.primaryDB = openDB(t, c.primary.DSN("postgres"))
	for range n {
		r := testserver.PostgresReplica(t, c.primary)
		c.replicas = append(c.replicas, r)
		c.replicaDBs = append(c.replicaDBs, openDB(t, r.DSN("postgres")))
	}
	return c
}

func openDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	t.Cleanup(func() { db.Close() })
	return db
}

func (c *cluster) router(t testing.TB, cfg dbrouter.Config) *dbrouter.Router {
	t.Helper()
	if cfg.Primary == nil {
		cfg.Primary = c.primaryDB
	}
	if cfg.Replicas == nil {
		for i, db := range c.replicaDBs {
			cfg.Replicas = append(cfg.Replicas, dbrouter.ReplicaConfig{Name: fmt.Sprintf("r%d", i+1), DB: db})
		}
	}
	r, err := dbrouter.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitReplicated polls until every replica has the row (k, v).
func (c *cluster) waitReplicated(t testing.TB, k, v int64) {
	t.Helper()
	for _, db := range c.replicaDBs {
		poll(t, 60*time.Second, fmt.Sprintf("replica never showed kv(%d)=%d", k, v), func() bool {
			var got int64
			return db.QueryRow("SELECT v FROM kv WHERE k = $1", k).Scan(&got) == nil && got == v
		})
	}
}

// poll calls ok until it returns true, failing the test with msg after d.
func poll(t testing.TB, d time.Duration, msg string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustExec(t testing.TB, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// quantile returns the q-quantile of ds (sorted in place).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// TestPostgresCluster runs the router against one primary and two streaming
// replicas shared by its subtests, which run in order: the lag and kill
// subtests disturb the replicas.
func TestPostgresCluster(t *testing.T) {
	c := startCluster(t, 2)
	mustExec(t, c.primaryDB, "CREATE TABLE kv (k bigint PRIMARY KEY, v bigint NOT NULL)")
	mustExec(t, c.primaryDB, "INSERT INTO kv SELECT g, 0 FROM generate_series(1, 100) g")
	c.waitReplicated(t, 100, 0)

	t.Run("StaleReadsWithoutRouter", func(t *testing.T) { testStaleWithoutRouter(t, c) })
	t.Run("ZeroStaleReadsWithSessionTokens", func(t *testing.T) { testTokens(t, c) })
	t.Run("TokenCarriedAcrossServers", func(t *testing.T) { testAcrossServers(t, c) })
	t.Run("GlobalScope", func(t *testing.T) { testGlobalScope(t, c) })
	t.Run("IntentRouting", func(t *testing.T) { testIntent(t, c) })
	t.Run("StandbyRefusesWrites", func(t *testing.T) { testStandbyRefuses(t, c) })
	t.Run("LagInjectionSkipsLaggingReplica", func(t *testing.T) { testLagSkip(t, c) })
	t.Run("FallbackBudget", func(t *testing.T) { testBudget(t, c) })
	t.Run("ReplicaKilledMidLoad", func(t *testing.T) { testKillReplica(t, c) })
}

// testStaleWithoutRouter is the trap the lecture hints at: a write on the
// primary followed at once by a read on a replica often returns the old
// value. If it found none, the token test below would prove nothing.
func testStaleWithoutRouter(t *testing.T, c *cluster) {
	const tries = 1000
	ctx := context.Background()
	stale := 0
	for i := 1; i <= tries; i++ {
		mustExec(t, c.primaryDB, "UPDATE kv SET v = $1 WHERE k = 1", i)
		var v int
		if err := c.replicaDBs[i%2].QueryRowContext(ctx, "SELECT v FROM kv WHERE k = 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != i {
			stale++
		}
	}
	t.Logf("without the router: %d of %d reads right after a commit were stale (%.1f%%)", stale, tries, 100*float64(stale)/tries)
	if stale == 0 {
		t.Fatalf("got 0 stale reads in %d tries without tokens; the probe cannot show what tokens fix", tries)
	}
}

// testTokens writes through the router with a Session and reads at once
// through it: 10,000 tries over 4 workers, no stale read allowed. It also
// measures the read latency with a token against reads without one.
func testTokens(t *testing.T, c *cluster) {
	const workers, per = 4, 2500
	r := c.router(t, dbrouter.Config{FallbackRate: -1})
	var stale, fails atomic.Int64
	lat := make([][]time.Duration, workers)
	base := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			k := int64(10 + w)
			s := &dbrouter.Session{}
			ctx := dbrouter.WithSession(context.Background(), s)
			for i := int64(1); i <= per; i++ {
				if _, err := r.ExecContext(ctx, "UPDATE kv SET v = $1 WHERE k = $2", i, k); err != nil {
					fails.Add(1)
					continue
				}
				var v int64
				start := time.Now()
				err := r.QueryRowContext(dbrouter.ReadOnly(ctx), "SELECT v FROM kv WHERE k = $1", k).Scan(&v)
				lat[w] = append(lat[w], time.Since(start))
				if err != nil {
					fails.Add(1)
				} else if v != i {
					stale.Add(1)
				}
				if i%5 == 0 { // a read without a token, for the baseline
					start = time.Now()
					err := r.QueryRowContext(dbrouter.ReadOnly(context.Background()), "SELECT v FROM kv WHERE k = $1", k).Scan(&v)
					base[w] = append(base[w], time.Since(start))
					if err != nil {
						fails.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	st := r.Stats()
	all, allBase := slices.Concat(lat...), slices.Concat(base...)
	p50, p99 := quantile(all, 0.50), quantile(all, 0.99)
	b50, b99 := quantile(allBase, 0.50), quantile(allBase, 0.99)
	t.Logf("with session tokens: %d stale of %d reads; token read p50 %v p99 %v vs no-token read p50 %v p99 %v (added p99 %v)",
		stale.Load(), workers*per, p50, p99, b50, b99, p99-b99)
	t.Logf("stats: replica reads %d, primary fallbacks %d, waits %d (total %v, mean %v)",
		st.ReplicaReads, st.Fallbacks, st.Waits, st.WaitTime, st.WaitTime/time.Duration(max(1, st.Waits)))
	if stale.Load() != 0 || fails.Load() != 0 {
		t.Fatalf("got %d stale reads and %d failures in %d tries, want 0 and 0", stale.Load(), fails.Load(), workers*per)
	}
	if st.ReplicaReads < workers*per/10 {
		t.Fatalf("only %d reads went to replicas; zero stale reads from the primary proves nothing", st.ReplicaReads)
	}
}

// testAcrossServers writes through one router (app server A) and reads
// through another (app server B), carrying the token as the encoded string
// a session cookie would hold.
func testAcrossServers(t *testing.T, c *cluster) {
	const tries = 1000
	a := c.router(t, dbrouter.Config{FallbackRate: -1})
	b := c.router(t, dbrouter.Config{FallbackRate: -1})
	stale := 0
	for i := 1; i <= tries; i++ {
		sa := &dbrouter.Session{}
		if _, err := a.ExecContext(dbrouter.WithSession(context.Background(), sa), "UPDATE kv SET v = $1 WHERE k = 2", i); err != nil {
			t.Fatal(err)
		}
		cookie := sa.Token().Encode()
		tok, err := dbrouter.DecodeToken(cookie)
		if err != nil || tok.IsZero() {
			t.Fatalf("DecodeToken(%q) = %v, %v; want a non-zero token", cookie, tok, err)
		}
		ctx := dbrouter.ReadOnly(dbrouter.WithSession(context.Background(), dbrouter.NewSession(tok)))
		var v int
		if err := b.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = 2").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != i {
			stale++
		}
	}
	if stale != 0 {
		t.Fatalf("got %d stale reads on server B of %d writes on server A, want 0", stale, tries)
	}
	if st := b.Stats(); st.ReplicaReads == 0 {
		t.Fatalf("server B served no read from a replica: %+v", st)
	}
}

// testGlobalScope: with ScopeGlobal, reads without a session still see the
// newest write the router made, and a read-write transaction's commit counts.
func testGlobalScope(t *testing.T, c *cluster) {
	const tries = 500
	r := c.router(t, dbrouter.Config{Scope: dbrouter.ScopeGlobal, FallbackRate: -1})
	ctx := context.Background()
	stale := 0
	for i := 1; i <= tries; i++ {
		tx, err := r.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE kv SET v = $1 WHERE k = 3", i); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		var v int
		if err := r.QueryRowContext(dbrouter.ReadOnly(ctx), "SELECT v FROM kv WHERE k = 3").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != i {
			stale++
		}
	}
	if stale != 0 {
		t.Fatalf("got %d stale reads in %d tries under ScopeGlobal, want 0", stale, tries)
	}
	if r.Newest().IsZero() {
		t.Fatal("Newest() is zero after committed transactions")
	}
}

// testIntent checks where each kind of statement runs, by asking the server
// that answers for its port.
func testIntent(t *testing.T, c *cluster) {
	r := c.router(t, dbrouter.Config{})
	ctx := context.Background()
	replicaPorts := []int{c.replicas[0].Port, c.replicas[1].Port}
	port := func(ctx context.Context) int {
		t.Helper()
		var p int
		if err := r.QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	txPort := func(opts *sql.TxOptions) int {
		t.Helper()
		tx, err := r.BeginTx(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var p int
		if err := tx.QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	seen := map[int]int{}
	for range 40 {
		seen[port(dbrouter.ReadOnly(ctx))]++
	}
	for _, p := range replicaPorts {
		if seen[p] == 0 {
			t.Errorf("read-only queries never reached replica :%d: %v", p, seen)
		}
	}
	if seen[c.primaryPort] != 0 {
		t.Errorf("read-only queries reached the primary %d times with healthy replicas", seen[c.primaryPort])
	}
	cases := []struct {
		name string
		got  int
		ok   func(int) bool
	}{
		{"unmarked query", port(ctx), func(p int) bool { return p == c.primaryPort }},
		{"read-write tx", txPort(nil), func(p int) bool { return p == c.primaryPort }},
		{"read-only tx", txPort(&sql.TxOptions{ReadOnly: true}), func(p int) bool { return slices.Contains(replicaPorts, p) }},
	}
	for _, tc := range cases {
		if !tc.ok(tc.got) {
			t.Errorf("%s ran on :%d (primary :%d, replicas %v)", tc.name, tc.got, c.primaryPort, replicaPorts)
		}
	}
	rows, err := r.QueryContext(dbrouter.ReadOnly(ctx), "SELECT k FROM kv WHERE k <= 3 ORDER BY k")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Close(); err != nil || n != 3 {
		t.Fatalf("QueryContext read %d rows (err %v), want 3", n, err)
	}
}

// testStandbyRefuses: a write that reaches a node in recovery is refused
// with SQLSTATE 25006, which the dialect recognises; a router whose only
// "primary" is a standby retries within FailoverWait and reports
// ErrNoPrimary, having applied nothing.
func testStandbyRefuses(t *testing.T, c *cluster) {
	_, err := c.replicaDBs[0].Exec("UPDATE kv SET v = -1 WHERE k = 4")
	if !(dbrouter.Postgres{}).IsReadOnly(err) {
		t.Fatalf("write on a standby: err %v, want SQLSTATE 25006 recognised by IsReadOnly", err)
	}
	r := c.router(t, dbrouter.Config{Primary: c.replicaDBs[0], FailoverWait: 300 * time.Millisecond})
	_, err = r.ExecContext(context.Background(), "UPDATE kv SET v = -1 WHERE k = 4")
	if !errors.Is(err, dbrouter.ErrNoPrimary) {
		t.Fatalf("write through a router whose primary is a standby: err %v, want ErrNoPrimary", err)
	}
	if st := r.Stats(); st.FailoverRetries == 0 {
		t.Fatalf("FailoverRetries = 0, want retries on a fresh connection")
	}
	var v int
	if err := c.primaryDB.QueryRow("SELECT v FROM kv WHERE k = 4").Scan(&v); err != nil || v == -1 {
		t.Fatalf("k=4 is %d (err %v): a refused write was applied", v, err)
	}
}
