package multiprimary

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"scaleout/dbrouter/keys"
	"scaleout/internal/testserver"
)

// TestGalera runs every multi-primary test against one three-node Galera
// cluster: starting one takes about a minute on a loaded machine.
func TestGalera(t *testing.T) {
	c := testserver.Galera(t, 3)
	dsns := c.CreateDB(t, "mp")
	nodes := make([]*sql.DB, len(dsns))
	for i, dsn := range dsns {
		// wsrep_sync_wait=1: a read waits until the node has applied
		// everything the cluster committed before it, so checks see it.
		db, err := sql.Open("mysql", dsn+"?wsrep_sync_wait=1")
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(8)
		t.Cleanup(func() { db.Close() })
		nodes[i] = db
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mustExec(t, ctx, nodes[0], "CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL)")
	mustExec(t, ctx, nodes[0], "CREATE TABLE lww (k BIGINT PRIMARY KEY, v VARCHAR(64) NOT NULL, stamp BIGINT NOT NULL)")
	mustExec(t, ctx, nodes[0], "CREATE TABLE bookings (id BIGINT PRIMARY KEY, node INT NOT NULL, seat VARCHAR(8) NOT NULL)")
	mustExec(t, ctx, nodes[0], "CREATE TABLE autoinc (id BIGINT AUTO_INCREMENT PRIMARY KEY, node INT NOT NULL)")

	t.Run("AnyNodeFirstCommitterWins", func(t *testing.T) { testConflicts(t, ctx, nodes, AnyNode, 1) })
	t.Run("HomedNoConflicts", func(t *testing.T) { testConflicts(t, ctx, nodes, Homed, 100) })
	t.Run("LastWriterWins", func(t *testing.T) { testLWW(t, ctx, nodes) })
	t.Run("NoDuplicateKeys", func(t *testing.T) { testInserts(t, ctx, nodes) })
	t.Run("AutoIncrementOffsets", func(t *testing.T) { testAutoIncrement(t, ctx, nodes) })
	// Last: it takes a node down for good.
	t.Run("HomeNodeDown", func(t *testing.T) { testHomeDown(t, ctx, c, nodes) })
}

// testHomeDown kills a node the way a crash would; transactions on keys
// homed there move to the next node and commit exactly once.
func testHomeDown(t *testing.T, ctx context.Context, c *testserver.GaleraCluster, nodes []*sql.DB) {
	cl, err := New(Config{Nodes: nodes, Mode: Homed})
	if err != nil {
		t.Fatal(err)
	}
	var homed []int64
	for k := int64(1); len(homed) < 20; k++ {
		if cl.Node(k) == 2 {
			homed = append(homed, k)
		}
	}
	c.Nodes[2].Kill()
	// The survivors keep a quorum (2 of 3) once they notice.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := testserver.GaleraStatus(ctx, nodes[0])
		if err == nil && st["wsrep_cluster_size"] == "2" && st["wsrep_ready"] == "ON" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("survivors did not form a cluster of 2: %v %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mustExec(t, ctx, nodes[0], "CREATE TABLE homed (k BIGINT PRIMARY KEY, n INT NOT NULL)")
	for _, k := range homed {
		err := cl.Tx(ctx, k, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO homed VALUES (?, 1) ON DUPLICATE KEY UPDATE n = n + 1", k)
			return err
		})
		if err != nil {
			t.Fatalf("key %d homed on the dead node: %v", k, err)
		}
	}
	var count, sum int
	if err := nodes[1].QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(n), 0) FROM homed").Scan(&count, &sum); err != nil {
		t.Fatal(err)
	}
	if count != len(homed) || sum != len(homed) {
		t.Errorf("%d rows summing to %d, want %d each applied once", count, sum, len(homed))
	}
}

func mustExec(t *testing.T, ctx context.Context, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// testConflicts has two writers, each an app server with its own Cluster,
// increment the same five rows concurrently. In AnyNode mode writer w sends
// everything to node w, so their transactions meet in certification and
// the later one fails and is retried; in Homed mode both follow the rows'
// home. Either way every transaction must end committed exactly once or
// reported failed: each row's final count equals the commits.
func testConflicts(t *testing.T, ctx context.Context, nodes []*sql.DB, mode Mode, row0 int) {
	const rows, writers, perWriter, conc = 5, 2, 60, 3
	for i := range rows {
		mustExec(t, ctx, nodes[0], "INSERT INTO counters VALUES (?, 0)", row0+i)
	}
	var commits, failed atomic.Int64
	var clusters []*Cluster
	before := galeraConflicts(t, ctx, nodes)
	var wg sync.WaitGroup
	for w := range writers {
		cfg := Config{Nodes: []*sql.DB{nodes[w]}, Mode: mode, Retries: 8}
		if mode == Homed {
			cfg.Nodes = nodes
		}
		cl, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		clusters = append(clusters, cl)
		for g := range conc {
			wg.Go(func() {
				for i := range perWriter / conc {
					err := cl.Tx(ctx, int64(row0), func(tx *sql.Tx) error {
						// Writers visit the rows in opposite orders, the
						// worst case for conflicts.
						for j := range rows {
							id := row0 + j
							if (w+g+i)%2 == 1 {
								id = row0 + rows - 1 - j
							}
							if _, err := tx.ExecContext(ctx, "UPDATE counters SET n = n + 1 WHERE id = ?", id); err != nil {
								return err
							}
						}
						return nil
					})
					switch {
					case err == nil:
						commits.Add(1)
					case errors.Is(err, ErrConflict):
						failed.Add(1)
					default:
						t.Errorf("writer %d: transaction ended neither committed nor reported failed: %v", w, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	var retried uint64
	for _, cl := range clusters {
		retried += cl.Stats().Conflicts
	}
	cert := galeraConflicts(t, ctx, nodes) - before
	t.Logf("mode %d: %d committed, %d reported failed, %d deadlock errors retried, of which %d Galera certification failures or brute-force aborts",
		mode, commits.Load(), failed.Load(), retried, cert)
	for n, db := range nodes {
		for i := range rows {
			var got int64
			if err := db.QueryRowContext(ctx, "SELECT n FROM counters WHERE id = ?", row0+i).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != commits.Load() {
				t.Errorf("node %d row %d: count %d, want %d (the committed transactions)", n, row0+i, got, commits.Load())
			}
		}
	}
	if commits.Load()+failed.Load() != writers*perWriter {
		t.Errorf("%d committed + %d failed, want %d transactions", commits.Load(), failed.Load(), writers*perWriter)
	}
	switch {
	case mode == Homed && cert != 0:
		t.Errorf("homed mode: %d certification conflicts, want 0 (all writers of a key on one node)", cert)
	case mode == AnyNode && (cert == 0 || retried == 0):
		t.Errorf("any-node mode: %d certification conflicts, %d retried; want some of both, or the test proves nothing", cert, retried)
	}
}

// galeraConflicts sums, over the nodes, the transactions Galera aborted for
// a conflict with another node: local certification failures and
// brute-force aborts by replicated writes.
func galeraConflicts(t *testing.T, ctx context.Context, nodes []*sql.DB) uint64 {
	t.Helper()
	var sum uint64
	for i, db := range nodes {
		st, err := testserver.GaleraStatus(ctx, db)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		for _, k := range []string{"wsrep_local_cert_failures", "wsrep_local_bf_aborts"} {
			var v uint64
			fmt.Sscan(st[k], &v)
			sum += v
		}
	}
	return sum
}

// testLWW has writers on all three nodes put values for the same keys with
// Snowflake stamps; each key must end with the value of the greatest stamp.
func testLWW(t *testing.T, ctx context.Context, nodes []*sql.DB) {
	l := LWW{Table: "lww", Key: "k", Value: "v", Stamp: "stamp"}
	var mu sync.Mutex
	best := map[int64]int64{}     // key -> greatest stamp written
	bestVal := map[int64]string{} // key -> its value
	var wg sync.WaitGroup
	for n := range nodes {
		cl, err := New(Config{Nodes: []*sql.DB{nodes[n]}, Retries: 20})
		if err != nil {
			t.Fatal(err)
		}
		gen, err := keys.NewSnowflake(keys.Config{Node: n})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range 60 {
				k := int64(i % 4)
				stamp := gen.Next()
				v := fmt.Sprintf("node%d-%d", n, i)
				if err := cl.PutLWW(ctx, l, k, v, stamp); err != nil {
					t.Errorf("PutLWW on node %d: %v", n, err)
					return
				}
				mu.Lock()
				if stamp > best[k] {
					best[k], bestVal[k] = stamp, v
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for n, db := range nodes {
		for k, want := range bestVal {
			var got string
			var stamp int64
			if err := db.QueryRowContext(ctx, "SELECT v, stamp FROM lww WHERE k = ?", k).Scan(&got, &stamp); err != nil {
				t.Fatal(err)
			}
			if got != want || stamp != best[k] {
				t.Errorf("node %d key %d: %q (stamp %d), want %q (stamp %d), the last writer by stamp", n, k, got, stamp, want, best[k])
			}
		}
	}
	if _, err := New(Config{Nodes: nodes}); err == nil {
		cl, _ := New(Config{Nodes: nodes})
		if err := cl.PutLWW(ctx, LWW{Table: "lww; DROP", Key: "k", Value: "v", Stamp: "s"}, 1, "x", 1); !errors.Is(err, ErrBadConfig) {
			t.Errorf("PutLWW with a bad identifier: %v, want ErrBadConfig", err)
		}
	}
}

// testInserts inserts 100,000 rows spread over the three nodes, keys from
// one Snowflake generator per node, in multi-row INSERTs: none may collide.
func testInserts(t *testing.T, ctx context.Context, nodes []*sql.DB) {
	const total, batch = 100_000, 1000
	var next atomic.Int64
	var wg sync.WaitGroup
	for n := range nodes {
		cl, err := New(Config{Nodes: []*sql.DB{nodes[n]}})
		if err != nil {
			t.Fatal(err)
		}
		gen, _ := keys.NewSnowflake(keys.Config{Node: n})
		wg.Go(func() {
			var b strings.Builder
			args := make([]any, 0, 2*batch)
			for next.Add(batch) <= total {
				b.Reset()
				args = args[:0]
				b.WriteString("INSERT INTO bookings (id, node, seat) VALUES ")
				for i := range batch {
					if i > 0 {
						b.WriteByte(',')
					}
					b.WriteString("(?, ?, '1A')")
					args = append(args, gen.Next(), n)
				}
				err := cl.Tx(ctx, 0, func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, b.String(), args...)
					return err
				})
				if err != nil {
					t.Errorf("insert batch on node %d: %v", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for n, db := range nodes {
		var count, distinct, perNode int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*), COUNT(DISTINCT id), COUNT(DISTINCT node) FROM bookings").Scan(&count, &distinct, &perNode); err != nil {
			t.Fatal(err)
		}
		if count != total || distinct != total || perNode != int64(len(nodes)) {
			t.Errorf("node %d: %d rows, %d distinct ids, from %d nodes; want %d, %d, %d", n, count, distinct, perNode, total, total, len(nodes))
		}
	}
	// The ids carry the node that made them.
	var bad int64
	if err := nodes[0].QueryRowContext(ctx, "SELECT COUNT(*) FROM bookings WHERE (id >> 12) & 1023 <> node").Scan(&bad); err != nil || bad != 0 {
		t.Errorf("%d ids do not carry their node (err %v)", bad, err)
	}
}

// testAutoIncrement checks the per-node offsets Galera gives AUTO_INCREMENT
// (wsrep_auto_increment_control): concurrent inserts on all nodes never
// collide, and each node's values follow its keys.Offsets.
func testAutoIncrement(t *testing.T, ctx context.Context, nodes []*sql.DB) {
	offs := make([]keys.Offsets, len(nodes))
	for n, db := range nodes {
		var inc, off int64
		if err := db.QueryRowContext(ctx, "SELECT @@auto_increment_increment, @@auto_increment_offset").Scan(&inc, &off); err != nil {
			t.Fatal(err)
		}
		o, err := keys.NewOffsets(inc, off)
		if err != nil || inc != int64(len(nodes)) {
			t.Fatalf("node %d: increment %d offset %d (%v), want increment %d", n, inc, off, err, len(nodes))
		}
		offs[n] = o
	}
	var wg sync.WaitGroup
	for n, db := range nodes {
		wg.Go(func() {
			for range 50 {
				if _, err := db.ExecContext(ctx, "INSERT INTO autoinc (node) VALUES (?)", n); err != nil {
					t.Errorf("node %d: %v", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	rows, err := nodes[0].QueryContext(ctx, "SELECT id, node FROM autoinc")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	count := 0
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		count++
		if !offs[n].Owns(id) {
			t.Errorf("id %d inserted on node %d, outside its offsets %+v", id, n, offs[n])
		}
	}
	if count != 50*len(nodes) {
		t.Errorf("%d auto-increment rows, want %d", count, 50*len(nodes))
	}
}
