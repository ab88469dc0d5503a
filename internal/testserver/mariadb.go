package testserver

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBServer is a MariaDB server started for one test. Its methods come
// from Process: Stop, Kill (SIGKILL), Restart, Pid, LogTail.
type MariaDBServer struct {
	*Process
	// Addr is "127.0.0.1:port".
	Addr string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Dir is the data directory.
	Dir string
	// Socket is the server's unix socket path.
	Socket string
}

// MariaDBConfig tunes StartMariaDB. The zero value is what MariaDB uses.
type MariaDBConfig struct {
	// Args are extra mariadbd options ("--name=value"), appended after the
	// defaults so they override them, e.g. the wsrep options of a Galera
	// node. If empty, only the test defaults are used.
	Args []string
	// Port, if non-zero, is the port to listen on, for servers whose peers
	// must know it before it starts; if zero, a free port is picked.
	Port int
}

// MariaDB starts a MariaDB server (mariadb-install-db into a temp dir, then
// mariadbd bound to 127.0.0.1 on a free port with its own socket); it is
// stopped in t.Cleanup. User root has no password and may connect over TCP.
// The test fails (it does not skip) when MariaDB is not installed.
func MariaDB(t testing.TB) *MariaDBServer {
	t.Helper()
	return StartMariaDB(t, MariaDBConfig{})
}

// StartMariaDB is MariaDB with options; see MariaDBConfig.
func StartMariaDB(t testing.TB, cfg MariaDBConfig) *MariaDBServer {
	t.Helper()
	bin := lookBinary(t, "mariadbd", "mariadb-server", "/usr/sbin", "/usr/bin")
	install := lookBinary(t, "mariadb-install-db", "mariadb-server", "/usr/bin", "/usr/sbin")
	dir := tempDir(t, "mariadb")
	data := filepath.Join(dir, "data")
	sock := filepath.Join(dir, "mariadb.sock")
	user := []string{}
	if os.Geteuid() == 0 {
		user = []string{"--user=root"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	args := append([]string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve"}, user...)
	if err := runTool(ctx, nil, dir, install, args...); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	mk := func(port int) spec {
		args := append([]string{"--no-defaults", "--datadir=" + data, "--socket=" + sock,
			"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1", "--skip-name-resolve",
			"--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
			"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
			"--innodb-flush-log-at-trx-commit=0", "--skip-log-bin",
		}, user...)
		args = append(args, cfg.Args...)
		dsn := mariaDBDSN(port, "")
		return spec{
			name:       "mariadbd :" + strconv.Itoa(port),
			path:       bin,
			args:       args,
			logPath:    filepath.Join(dir, "mariadbd.log"),
			stopSignal: syscall.SIGTERM,
			ready:      func(ctx context.Context) error { return mariaDBPing(ctx, dsn) },
		}
	}
	var p *Process
	port := cfg.Port
	if port == 0 {
		p, port = startOnFreePort(t, mk)
	} else {
		var err error
		if p, err = start(context.Background(), mk(port)); err != nil {
			t.Fatalf("testserver: %v", err)
		}
		t.Cleanup(p.Stop)
	}
	return &MariaDBServer{Process: p, Addr: hostPort(port), Port: port, Dir: data, Socket: sock}
}

// DSN returns a go-sql-driver/mysql DSN for database dbname as root with no
// password: "root@tcp(127.0.0.1:port)/dbname". dbname may be empty.
func (s *MariaDBServer) DSN(dbname string) string { return mariaDBDSN(s.Port, dbname) }

// CreateDB creates database name and returns its DSN; the test fails if it
// cannot.
func (s *MariaDBServer) CreateDB(t testing.TB, name string) string {
	t.Helper()
	db, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+strings.ReplaceAll(name, "`", "``")+"`"); err != nil {
		t.Fatalf("testserver: create database %q: %v", name, err)
	}
	return s.DSN(name)
}

func mariaDBDSN(port int, dbname string) string {
	return fmt.Sprintf("root@tcp(%s)/%s", hostPort(port), dbname)
}

func mariaDBPing(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return err
	}
	c.Timeout = 2 * time.Second
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	return db.PingContext(ctx)
}
