package testserver

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// galeraProvider is where Debian's galera-4 package installs the wsrep
// provider library.
const galeraProvider = "/usr/lib/galera/libgalera_smm.so"

// GaleraCluster is a MariaDB Galera cluster started for one test: several
// mariadbd processes on one machine, each with its own data directory,
// socket, client port and Galera ports, replicating synchronously to each
// other. Every node takes writes.
type GaleraCluster struct {
	// Nodes are the cluster's servers, Nodes[0] the one that bootstrapped it.
	// Each is a MariaDBServer: DSN, CreateDB, Stop, Kill, Restart work as for
	// a single server.
	Nodes []*MariaDBServer
}

// galeraPorts are the ports one node needs besides its client port: group
// communication (gmcast), incremental state transfer and full state
// transfer (SST, rsync here).
type galeraPorts struct{ client, gcomm, ist, sst int }

// Galera starts a Galera cluster of n nodes (n >= 1; 3 is the smallest that
// keeps a quorum when one node fails) from the installed binaries: the first
// node bootstraps a new cluster (--wsrep-new-cluster), the others join it
// one by one and receive its state by rsync SST. It returns once every node
// reports wsrep_ready=ON and wsrep_cluster_size=n. The nodes are stopped in
// t.Cleanup, joiners first. The test fails (it does not skip) when MariaDB,
// the Galera library or rsync is missing, naming the Debian package.
func Galera(t testing.TB, n int) *GaleraCluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("testserver: Galera cluster of %d nodes: need at least 1", n)
	}
	if _, err := os.Stat(galeraProvider); err != nil {
		t.Fatalf("testserver: Galera provider %s missing: install the Debian package %q (scripts/install-test-deps does): %v", galeraProvider, "galera-4", err)
	}
	lookBinary(t, "rsync", "rsync", "/usr/bin")
	lookBinary(t, "wsrep_sst_rsync", "mariadb-server", "/usr/bin")
	ports := make([]galeraPorts, n)
	addrs := make([]string, n)
	seen := map[int]bool{}
	for i := range ports {
		ports[i] = galeraPorts{distinctPort(t, seen), distinctPort(t, seen), distinctPort(t, seen), distinctPort(t, seen)}
		addrs[i] = hostPort(ports[i].gcomm)
	}
	c := &GaleraCluster{}
	for i, p := range ports {
		args := []string{
			"--wsrep-on=ON",
			"--wsrep-provider=" + galeraProvider,
			"--wsrep-cluster-name=scaleout-test",
			"--wsrep-cluster-address=gcomm://" + strings.Join(addrs, ","),
			"--wsrep-node-name=node" + strconv.Itoa(i+1),
			"--wsrep-node-address=" + hostPort(p.gcomm),
			"--wsrep-node-incoming-address=" + hostPort(p.client),
			"--wsrep-provider-options=" + galeraOptions(p),
			"--wsrep-sst-method=rsync",
			"--wsrep-sst-receive-address=" + hostPort(p.sst),
			"--wsrep-slave-threads=2",
			"--binlog-format=ROW",
			"--default-storage-engine=InnoDB",
			"--innodb-autoinc-lock-mode=2",
		}
		if i == 0 {
			args = append(args, "--wsrep-new-cluster")
		}
		node := startGaleraNode(t, i, p.client, args)
		c.Nodes = append(c.Nodes, node)
		// Wait for this node to be synced before the next joins: two
		// joiners asking the same donor for SST at once would make one wait.
		if err := c.waitNode(node, i+1); err != nil {
			t.Fatalf("testserver: %v", err)
		}
	}
	for i, node := range c.Nodes {
		if err := c.waitNode(node, n); err != nil {
			t.Fatalf("testserver: galera node %d: %v", i+1, err)
		}
	}
	return c
}

// galeraOptions is the wsrep_provider_options string of one node: its
// group-communication listener and its IST receiver, on loopback, with
// timeouts loose enough for a loaded machine.
func galeraOptions(p galeraPorts) string {
	return strings.Join([]string{
		"base_port=" + strconv.Itoa(p.gcomm),
		"gmcast.listen_addr=tcp://" + hostPort(p.gcomm),
		"ist.recv_addr=" + hostPort(p.ist),
		"evs.suspect_timeout=PT30S",
		"evs.inactive_timeout=PT60S",
		"evs.install_timeout=PT60S",
		"gcache.size=64M",
	}, ";")
}

// distinctPort returns a free port not yet handed out to this cluster.
func distinctPort(t testing.TB, seen map[int]bool) int {
	t.Helper()
	for {
		p := FreePort(t)
		if !seen[p] {
			seen[p] = true
			return p
		}
	}
}

// waitNode polls node until it is synced, ready and sees a cluster of at
// least size nodes.
func (c *GaleraCluster) waitNode(node *MariaDBServer, size int) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	db, err := sql.Open("mysql", node.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	var last string
	for {
		st, err := GaleraStatus(ctx, db)
		if err == nil && st["wsrep_ready"] == "ON" && st["wsrep_local_state_comment"] == "Synced" {
			if got, _ := strconv.Atoi(st["wsrep_cluster_size"]); got >= size {
				return nil
			}
		}
		last = fmt.Sprintf("ready=%s state=%s size=%s err=%v", st["wsrep_ready"], st["wsrep_local_state_comment"], st["wsrep_cluster_size"], err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("galera node :%d not synced in a cluster of %d after %v (%s); log tail:\n%s", node.Port, size, readyTimeout, last, node.LogTail())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// GaleraStatus returns a node's wsrep status variables (SHOW STATUS LIKE
// 'wsrep%'), such as wsrep_cluster_size, wsrep_ready and
// wsrep_local_cert_failures.
func GaleraStatus(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS LIKE 'wsrep%'")
	if err != nil {
		return map[string]string{}, err
	}
	defer rows.Close()
	st := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return st, err
		}
		st[k] = v
	}
	return st, rows.Err()
}

// DSNs returns a DSN for database dbname on every node, in node order.
func (c *GaleraCluster) DSNs(dbname string) []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.DSN(dbname)
	}
	return out
}

// CreateDB creates database name (on one node; Galera replicates the DDL to
// the others) and returns its DSN on every node.
func (c *GaleraCluster) CreateDB(t testing.TB, name string) []string {
	t.Helper()
	c.Nodes[0].CreateDB(t, name)
	return c.DSNs(name)
}

// startGaleraNode starts one node on a fixed client port (its peers know it
// before it starts). It is StartMariaDB but for the OS user: when the tests
// run as root, a Galera node runs as the "mysql" user, because the rsync SST
// script starts an rsync daemon as the server's user, and an rsync daemon
// started by root switches to "nobody", which cannot write the joiner's
// private data directory ("rsync: cannot stat destination: Permission
// denied", and the joiner aborts). Joiners get an empty data directory: the
// SST fills it.
func startGaleraNode(t testing.TB, i, port int, extra []string) *MariaDBServer {
	t.Helper()
	bin := lookBinary(t, "mariadbd", "mariadb-server", "/usr/sbin", "/usr/bin")
	install := lookBinary(t, "mariadb-install-db", "mariadb-server", "/usr/bin", "/usr/sbin")
	dir := tempDir(t, "galera")
	data := filepath.Join(dir, "data")
	sock := filepath.Join(dir, "mariadb.sock")
	cred, userArgs := mysqlUser(t)
	chownTree(t, dir, cred)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if i == 0 {
		args := append([]string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
			"--skip-test-db", "--skip-name-resolve"}, userArgs...)
		if err := runTool(ctx, nil, dir, install, args...); err != nil {
			t.Fatalf("testserver: %v", err)
		}
	} else {
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatalf("testserver: %v", err)
		}
		chownTree(t, data, cred)
	}
	args := append([]string{"--no-defaults", "--datadir=" + data, "--socket=" + sock,
		"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1", "--skip-name-resolve",
		"--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
		"--innodb-flush-log-at-trx-commit=0", "--skip-log-bin",
	}, userArgs...)
	args = append(args, extra...)
	dsn := mariaDBDSN(port, "")
	p, err := start(ctx, spec{
		name:       "galera node" + strconv.Itoa(i+1) + " mariadbd :" + strconv.Itoa(port),
		path:       bin,
		args:       args,
		logPath:    filepath.Join(dir, "mariadbd.log"),
		stopSignal: syscall.SIGTERM,
		ready:      func(ctx context.Context) error { return mariaDBPing(ctx, dsn) },
	})
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	node := &MariaDBServer{Process: p, Addr: hostPort(port), Port: port, Dir: data, Socket: sock}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testserver: log tail of galera node %d (:%d):\n%s", i+1, port, node.LogTail())
		}
		p.Stop()
	})
	return node
}

// mysqlUser returns the credential and mariadbd option for a Galera node's
// OS user: the "mysql" user when running as root, ourselves otherwise.
func mysqlUser(t testing.TB) (*syscall.Credential, []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("mysql")
	if err != nil {
		t.Fatalf("testserver: running as root, a Galera node needs the \"mysql\" OS user (the Debian package mariadb-server creates it): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, []string{"--user=mysql"}
}
