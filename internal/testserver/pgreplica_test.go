package testserver

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPostgresReplica starts a primary and a streaming replica, checks that
// a row written on the primary reaches the replica, that the replica is in
// recovery and refuses writes, that an injected apply delay holds a commit
// back, and that a promoted replica takes writes.
func TestPostgresReplica(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	primary := StartPostgres(t, PostgresConfig{Settings: []string{"synchronous_commit=on"}})
	replica := PostgresReplica(t, primary)

	pc := connect(ctx, t, primary)
	rc := connect(ctx, t, replica)
	pgExec(ctx, t, pc, "CREATE TABLE kv (k int PRIMARY KEY, v int)")
	pgExec(ctx, t, pc, "INSERT INTO kv VALUES (1, 1)")
	waitValue(ctx, t, rc, 1)

	var inRecovery bool
	if err := rc.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("replica pg_is_in_recovery() = %v, %v; want true", inRecovery, err)
	}
	if _, err := rc.Exec(ctx, "UPDATE kv SET v = 2"); err == nil {
		t.Fatal("write on the replica succeeded; want a read-only error")
	}

	PostgresSet(t, replica, "recovery_min_apply_delay", "1s")
	// The startup process picks the delay up asynchronously: write until a
	// commit is seen held back, bounded in tries.
	held := false
	for i := 2; i < 200 && !held; i++ {
		pgExec(ctx, t, pc, "UPDATE kv SET v = $1", i)
		var v int
		if err := rc.QueryRow(ctx, "SELECT v FROM kv").Scan(&v); err != nil {
			t.Fatal(err)
		}
		held = v != i
		time.Sleep(10 * time.Millisecond)
	}
	if !held {
		t.Fatal("recovery_min_apply_delay=1s did not hold back any commit")
	}
	PostgresSet(t, replica, "recovery_min_apply_delay", "")

	PostgresPromote(t, replica)
	pgExec(ctx, t, rc, "INSERT INTO kv VALUES (2, 2)")
}

func connect(ctx context.Context, t *testing.T, s *PostgresServer) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func pgExec(ctx context.Context, t *testing.T, c *pgx.Conn, q string, args ...any) {
	t.Helper()
	if _, err := c.Exec(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func waitValue(ctx context.Context, t *testing.T, c *pgx.Conn, want int) {
	t.Helper()
	for {
		var v int
		err := c.QueryRow(ctx, "SELECT v FROM kv WHERE k = 1").Scan(&v)
		if err == nil && v == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("replica never showed v=%d (last err %v, v %d)", want, err, v)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
