package testserver

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// TestGaleraCluster starts three nodes and checks that they form one cluster
// in which a write on any node is visible on every other.
func TestGaleraCluster(t *testing.T) {
	t.Parallel()
	c := Galera(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsns := c.CreateDB(t, "g")
	dbs := make([]*sql.DB, len(dsns))
	for i, dsn := range dsns {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs[i] = db
		st, err := GaleraStatus(ctx, db)
		if err != nil {
			t.Fatalf("node %d: status: %v", i+1, err)
		}
		if st["wsrep_cluster_size"] != "3" || st["wsrep_ready"] != "ON" {
			t.Errorf("node %d: cluster_size=%q ready=%q, want 3 and ON", i+1, st["wsrep_cluster_size"], st["wsrep_ready"])
		}
	}
	if _, err := dbs[0].ExecContext(ctx, "CREATE TABLE kv (k INT PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	for i, db := range dbs {
		if _, err := db.ExecContext(ctx, "INSERT INTO kv VALUES (?, ?)", i, i*10); err != nil {
			t.Fatalf("insert on node %d: %v", i+1, err)
		}
	}
	// Galera replication is synchronous for certification, but applying on
	// the other nodes is not: wsrep_sync_wait makes a read wait for it.
	for i, db := range dbs {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "SET SESSION wsrep_sync_wait = 1"); err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		var n, sum int
		if err := conn.QueryRowContext(ctx, "SELECT COUNT(*), SUM(v) FROM kv").Scan(&n, &sum); err != nil {
			t.Fatalf("node %d: count: %v", i+1, err)
		}
		conn.Close()
		if n != 3 || sum != 30 {
			t.Errorf("node %d sees %d rows summing to %d, want 3 rows summing to 30", i+1, n, sum)
		}
	}
}
