package testserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisServer is a redis-server started for one test. Its methods come from
// Process: Stop, Kill (SIGKILL), Restart, Pid, LogTail.
type RedisServer struct {
	*Process
	// Addr is "127.0.0.1:port".
	Addr string
	// Dir is the server's working directory (its log, any dump files).
	Dir string
}

// Redis starts a redis-server on a free loopback port in a temp dir, with
// persistence off; it is stopped in t.Cleanup. The test fails (it does not
// skip) when redis-server is not installed.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	bin := lookBinary(t, "redis-server", "redis-server", "/usr/bin", "/usr/sbin")
	dir := tempDir(t, "redis")
	p, port := startOnFreePort(t, func(port int) spec {
		addr := hostPort(port)
		return spec{
			name: "redis-server " + addr,
			path: bin,
			args: []string{
				"--port", strconv.Itoa(port),
				"--bind", "127.0.0.1",
				"--dir", dir,
				"--save", "",
				"--appendonly", "no",
				"--daemonize", "no",
				"--protected-mode", "no",
				"--unixsocket", "",
				"--logfile", "",
			},
			logPath:    filepath.Join(dir, "redis.log"),
			stopSignal: syscall.SIGTERM,
			ready:      func(ctx context.Context) error { return redisPing(ctx, addr) },
		}
	})
	return &RedisServer{Process: p, Addr: hostPort(port), Dir: dir}
}

// redisPing sends PING over RESP and expects +PONG, without a client library.
func redisPing(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}
