package dbrouter_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"scaleout/dbrouter"
)

// openSQLite opens one SQLite database file; with readOnly, a read-only
// pool on it (the embedded setup's stand-in for a replica).
func openSQLite(t testing.TB, path string, readOnly bool) *sql.DB {
	t.Helper()
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
	if readOnly {
		dsn = "file:" + path + "?mode=ro&_pragma=busy_timeout(5000)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestSQLite runs the same API over the embedded default: one SQLite
// database, tokens that are no-ops, and (optionally) read-only pools on the
// same file as replicas.
func TestSQLite(t *testing.T) {
	t.Parallel()
	for _, withReplicas := range []bool{false, true} {
		name := "single"
		if withReplicas {
			name = "read-only-pools"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "app.db")
			primary := openSQLite(t, path, false)
			mustExec(t, primary, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
			cfg := dbrouter.Config{Primary: primary, Dialect: dbrouter.SQLite{}}
			if withReplicas {
				cfg.Replicas = []dbrouter.ReplicaConfig{{Name: "ro", DB: openSQLite(t, path, true)}}
			}
			r, err := dbrouter.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := &dbrouter.Session{}
			ctx := dbrouter.WithSession(context.Background(), s)
			for i := 1; i <= 50; i++ {
				if _, err := r.ExecContext(ctx, "INSERT INTO kv VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", 1, i); err != nil {
					t.Fatal(err)
				}
				var v int
				if err := r.QueryRowContext(dbrouter.ReadOnly(ctx), "SELECT v FROM kv WHERE k = 1").Scan(&v); err != nil || v != i {
					t.Fatalf("read after write %d: v=%d err=%v", i, v, err)
				}
			}
			if !s.Token().IsZero() {
				t.Fatalf("SQLite token = %v, want zero (tokens are no-ops)", s.Token())
			}
			tx, err := r.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "UPDATE kv SET v = 100 WHERE k = 1"); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			rtx, err := r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			var v int
			if err := rtx.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = 1").Scan(&v); err != nil || v != 100 {
				t.Fatalf("read-only tx: v=%d err=%v, want 100", v, err)
			}
			if err := rtx.Rollback(); err != nil {
				t.Fatal(err)
			}
			if err := r.QueryRowContext(dbrouter.ReadOnly(ctx), "SELECT v FROM kv WHERE k = 2").Scan(&v); !errors.Is(err, sql.ErrNoRows) {
				t.Fatalf("missing row: err %v, want sql.ErrNoRows", err)
			}
			st := r.Stats()
			if withReplicas && (st.ReplicaReads == 0 || st.Replicas[0].InFlight != 0) {
				t.Fatalf("stats %+v: want replica reads and nothing left in flight", st)
			}
			if !withReplicas && st.ReplicaReads != 0 {
				t.Fatalf("stats %+v: replica reads without replicas", st)
			}
			if withReplicas {
				// The read-only pool refuses writes; the dialect says so.
				_, err := cfg.Replicas[0].DB.Exec("UPDATE kv SET v = 0")
				if !(dbrouter.SQLite{}).IsReadOnly(err) {
					t.Fatalf("write on the read-only pool: err %v, want IsReadOnly", err)
				}
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, filepath.Join(t.TempDir(), "x.db"), false)
	tests := []struct {
		name string
		cfg  dbrouter.Config
	}{
		{"no primary", dbrouter.Config{}},
		{"nil replica db", dbrouter.Config{Primary: db, Replicas: []dbrouter.ReplicaConfig{{Name: "a"}}}},
		{"duplicate names", dbrouter.Config{Primary: db, Replicas: []dbrouter.ReplicaConfig{{Name: "a", DB: db}, {Name: "a", DB: db}}}},
		{"unknown scope", dbrouter.Config{Primary: db, Scope: 7}},
		{"negative interval", dbrouter.Config{Primary: db, HeartbeatInterval: -1}},
		{"negative burst", dbrouter.Config{Primary: db, FallbackBurst: -1}},
		{"bad heartbeat table", dbrouter.Config{Primary: db, Dialect: dbrouter.Postgres{HeartbeatTable: "x; DROP TABLE y"}}},
	}
	for _, tc := range tests {
		if _, err := dbrouter.New(tc.cfg); !errors.Is(err, dbrouter.ErrBadConfig) {
			t.Errorf("%s: New error %v, want ErrBadConfig", tc.name, err)
		}
	}
	if _, err := dbrouter.New(dbrouter.Config{Primary: db, Dialect: dbrouter.Postgres{HeartbeatTable: "ops.heartbeat"}}); err != nil {
		t.Errorf("schema-qualified heartbeat table refused: %v", err)
	}
}
