package testserver

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresServer is a PostgreSQL server started for one test. Its methods
// come from Process: Stop (fast shutdown), Kill (SIGKILL), Restart, Pid,
// LogTail.
type PostgresServer struct {
	*Process
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Dir is the data directory (PGDATA).
	Dir string
	// SocketDir holds the server's unix socket.
	SocketDir string
	// BinDir is the directory of the PostgreSQL binaries used
	// (initdb, postgres, pg_basebackup, ...).
	BinDir string
	// Cred is the OS user the server runs as: the "postgres" user when the
	// tests run as root (PostgreSQL refuses root), nil otherwise. Tools run
	// against Dir (pg_basebackup, pg_ctl) must run as the same user.
	Cred *syscall.Credential
}

// PostgresConfig tunes StartPostgres. The zero value is what Postgres uses.
type PostgresConfig struct {
	// Settings are extra server settings as "name=value", passed as -c
	// flags after the defaults (so they override them), e.g.
	// "wal_level=logical". If empty, only the test defaults are used:
	// fsync=off, synchronous_commit=off, full_page_writes=off.
	Settings []string
	// DataDir, if set, is an existing data directory to start on (one made
	// by pg_basebackup for a replica, say), owned by the server user; initdb
	// is not run. If empty, a fresh one is made with initdb.
	DataDir string
}

// Postgres starts a PostgreSQL server (initdb into a temp dir, then postgres
// listening on 127.0.0.1 only, on a free port, with its unix socket in the
// temp dir); it is stopped in t.Cleanup. The superuser is "postgres" with no
// password. The test fails (it does not skip) when PostgreSQL is not
// installed.
func Postgres(t testing.TB) *PostgresServer {
	t.Helper()
	return StartPostgres(t, PostgresConfig{})
}

// StartPostgres is Postgres with settings; see PostgresConfig.
func StartPostgres(t testing.TB, cfg PostgresConfig) *PostgresServer {
	t.Helper()
	binDir := PostgresBinDir(t)
	dir := tempDir(t, "pg")
	cred := postgresCred(t)
	sock := filepath.Join(dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	chownTree(t, dir, cred)
	data := cfg.DataDir
	if data == "" {
		data = filepath.Join(dir, "data")
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		err := runTool(ctx, cred, dir, filepath.Join(binDir, "initdb"),
			"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
		if err != nil {
			t.Fatalf("testserver: %v", err)
		}
	}
	p, port := startOnFreePort(t, func(port int) spec {
		args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", sock,
			"-c", "listen_addresses=127.0.0.1",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		}
		for _, s := range cfg.Settings {
			args = append(args, "-c", s)
		}
		dsn := postgresDSN(port, "postgres")
		return spec{
			name:       "postgres :" + strconv.Itoa(port),
			path:       filepath.Join(binDir, "postgres"),
			args:       args,
			logPath:    filepath.Join(dir, "postgres.log"),
			cred:       cred,
			stopSignal: syscall.SIGINT, // fast shutdown: do not wait for clients
			ready:      func(ctx context.Context) error { return postgresPing(ctx, dsn) },
		}
	})
	return &PostgresServer{Process: p, Port: port, Dir: data, SocketDir: sock, BinDir: binDir, Cred: cred}
}

// DSN returns a connection URL for database dbname as the superuser
// "postgres", with no password and sslmode=disable; pgx and its database/sql
// driver accept it.
func (s *PostgresServer) DSN(dbname string) string { return postgresDSN(s.Port, dbname) }

// CreateDB creates database name and returns its DSN; the test fails if it
// cannot. Tests that share one server use a database each.
func (s *PostgresServer) CreateDB(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("testserver: connect to postgres :%d: %v", s.Port, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testserver: create database %q: %v", name, err)
	}
	return s.DSN(name)
}

func postgresDSN(port int, dbname string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", hostPort(port), dbname)
}

func postgresPing(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// PostgresBinDir returns the directory of the newest installed PostgreSQL's
// binaries (/usr/lib/postgresql/<version>/bin on Debian), or the directory of
// an initdb on PATH. The test fails naming the Debian package when there is
// none.
func PostgresBinDir(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d
		}
	}
	return filepath.Dir(lookBinary(t, "initdb", "postgresql"))
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// postgresCred returns the credential to run PostgreSQL with: the
// "postgres" OS user when running as root, nil (ourselves) otherwise.
func postgresCred(t testing.TB) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("testserver: running as root, PostgreSQL needs the \"postgres\" OS user (the Debian package postgresql creates it): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
}

// chownTree gives dir and everything in it to cred's user (nothing to do
// when cred is nil).
func chownTree(t testing.TB, dir string, cred *syscall.Credential) {
	t.Helper()
	if cred == nil {
		return
	}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
	if err != nil {
		t.Fatalf("testserver: chown %s: %v", dir, err)
	}
}
