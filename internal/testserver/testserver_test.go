package testserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func TestRedisTwoAtOnce(t *testing.T) {
	t.Parallel()
	a, b := Redis(t), Redis(t)
	if a.Addr == b.Addr {
		t.Fatalf("two servers share address %s", a.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca := redis.NewClient(&redis.Options{Addr: a.Addr})
	cb := redis.NewClient(&redis.Options{Addr: b.Addr})
	defer ca.Close()
	defer cb.Close()
	if err := ca.Set(ctx, "k", "on-a", 0).Err(); err != nil {
		t.Fatalf("set on a: %v", err)
	}
	if err := cb.Set(ctx, "k", "on-b", 0).Err(); err != nil {
		t.Fatalf("set on b: %v", err)
	}
	for _, tc := range []struct {
		c    *redis.Client
		want string
	}{{ca, "on-a"}, {cb, "on-b"}} {
		got, err := tc.c.Get(ctx, "k").Result()
		if err != nil || got != tc.want {
			t.Errorf("get k = %q, %v; want %q", got, err, tc.want)
		}
	}

	// Kill is a crash: the port stops answering; Restart brings it back.
	pid := a.Pid()
	a.Kill()
	if a.Running() {
		t.Fatalf("redis pid %d still running after Kill", pid)
	}
	if err := redisPing(ctx, a.Addr); err == nil {
		t.Fatalf("ping after Kill succeeded, want an error")
	}
	if err := a.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if a.Pid() == pid {
		t.Errorf("pid after restart = %d, want a new process", a.Pid())
	}
	if err := ca.Ping(ctx).Err(); err != nil {
		t.Errorf("ping after restart: %v", err)
	}
	b.Stop()
	if err := redisPing(ctx, b.Addr); err == nil {
		t.Errorf("ping after Stop succeeded, want an error")
	}
	b.Stop() // stopping twice is harmless
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	pg := Postgres(t)
	if _, err := os.Stat(pg.Dir + "/PG_VERSION"); err != nil {
		t.Errorf("data dir %s: %v", pg.Dir, err)
	}
	dsn := pg.CreateDB(t, "harness")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	defer conn.Close(ctx)
	var db, user string
	if err := conn.QueryRow(ctx, "SELECT current_database(), current_user").Scan(&db, &user); err != nil {
		t.Fatalf("query: %v", err)
	}
	if db != "harness" || user != "postgres" {
		t.Errorf("got database %q user %q, want harness postgres", db, user)
	}
	// Only loopback: the listen address setting is what we asked for.
	var listen string
	if err := conn.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen); err != nil || listen != "127.0.0.1" {
		t.Errorf("listen_addresses = %q, %v; want 127.0.0.1", listen, err)
	}
	pg.Stop()
	if pg.Running() {
		t.Fatalf("postgres still running after Stop")
	}
	d := net.Dialer{Timeout: time.Second}
	if c, err := d.Dial("tcp", hostPort(pg.Port)); err == nil {
		c.Close()
		t.Errorf("port %d still open after Stop", pg.Port)
	}
}

func TestMariaDB(t *testing.T) {
	t.Parallel()
	m := MariaDB(t)
	dsn := m.CreateDB(t, "harness")
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (1, 'one')"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var v string
	if err := db.QueryRowContext(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != "one" {
		t.Errorf("select = %q, %v; want one", v, err)
	}
	// Users can be created: grant tables are on.
	if _, err := db.ExecContext(ctx, "CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'pw'"); err != nil {
		t.Errorf("create user: %v", err)
	}
	m.Kill()
	if err := db.PingContext(ctx); err == nil {
		t.Errorf("ping after Kill succeeded, want an error")
	}
}

func TestStartFailureQuotesLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := start(context.Background(), spec{
		name:       "sh",
		path:       "/bin/sh",
		args:       []string{"-c", "echo boom-marker >&2; exit 3"},
		logPath:    dir + "/sh.log",
		stopSignal: 15,
		ready:      func(context.Context) error { return errors.New("not yet") },
	})
	if !errors.Is(err, ErrExited) {
		t.Fatalf("err = %v, want ErrExited", err)
	}
	if !strings.Contains(err.Error(), "boom-marker") {
		t.Errorf("error %q does not quote the log", err)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records instead of stopping.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper()                           {}
func (f *fatalRecorder) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestMissingBinaryNamesDebianPackage(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{TB: t}
	if got := lookBinary(rec, "no-such-server-binary", "no-such-package", t.TempDir()); got != "" {
		t.Errorf("lookBinary = %q, want empty", got)
	}
	if !strings.Contains(rec.msg, `"no-such-package"`) {
		t.Errorf("fatal message %q does not name the Debian package", rec.msg)
	}
}
