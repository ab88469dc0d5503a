package testserver

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresReplica starts a streaming replica of primary: pg_basebackup -R
// (run as the server's OS user) copies the primary's data directory and
// writes standby.signal and primary_conninfo, then a server starts on it in
// hot standby. The primary needs nothing beyond the defaults that
// StartPostgres gives it: wal_level=replica and max_wal_senders=10 are
// PostgreSQL's defaults, and initdb's pg_hba.conf already trusts
// replication connections from 127.0.0.1 (checked here, with a clear
// failure if someone changed it). settings are extra "name=value" server
// settings for the replica. The replica is stopped in t.Cleanup.
func PostgresReplica(t testing.TB, primary *PostgresServer, settings ...string) *PostgresServer {
	t.Helper()
	dir := tempDir(t, "pgreplica")
	chownTree(t, dir, primary.Cred)
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	err := runTool(ctx, primary.Cred, dir, filepath.Join(primary.BinDir, "pg_basebackup"),
		"-h", "127.0.0.1", "-p", fmt.Sprint(primary.Port), "-U", "postgres",
		"-D", data, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	if err != nil {
		t.Fatalf("testserver: base backup of postgres :%d (its pg_hba.conf must allow replication from 127.0.0.1): %v", primary.Port, err)
	}
	return StartPostgres(t, PostgresConfig{DataDir: data, Settings: append([]string{"hot_standby=on"}, settings...)})
}

// PostgresSet changes server settings at run time with ALTER SYSTEM and
// reloads the configuration (settings of context "sighup" or "user" take
// effect at once), e.g. PostgresSet(t, replica, "recovery_min_apply_delay",
// "500ms") to inject a deterministic replay lag, or
// PostgresSet(t, primary, "synchronous_standby_names", "*") for synchronous
// replication. An empty value resets the setting to its default. The reload
// reaches the server's processes asynchronously: a test polls for the effect
// it needs rather than assuming it is immediate.
func PostgresSet(t testing.TB, s *PostgresServer, name, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("testserver: connect to postgres :%d: %v", s.Port, err)
	}
	defer conn.Close(ctx)
	stmt := "ALTER SYSTEM RESET " + pgx.Identifier{name}.Sanitize()
	if value != "" {
		stmt = "ALTER SYSTEM SET " + pgx.Identifier{name}.Sanitize() + " = '" + strings.ReplaceAll(value, "'", "''") + "'"
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		t.Fatalf("testserver: postgres :%d: %s: %v", s.Port, stmt, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatalf("testserver: postgres :%d: reload: %v", s.Port, err)
	}
}

// PostgresPromote promotes a replica to primary (pg_promote, waiting until
// it accepts writes), as an operator or failover manager would.
func PostgresPromote(t testing.TB, s *PostgresServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("testserver: connect to postgres :%d: %v", s.Port, err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil || !ok {
		t.Fatalf("testserver: promote postgres :%d: ok=%v err=%v", s.Port, ok, err)
	}
}
