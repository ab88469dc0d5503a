// Package testserver starts real database and cache servers for tests: Redis,
// PostgreSQL and MariaDB, from the binaries installed on the machine, each in
// a temporary directory of its own, listening on a free loopback port, and
// stopped when the test ends (t.Cleanup).
//
// Several servers of one kind may run in one test (replicas, a cluster): the
// mechanics that every engine shares live in this file (finding a binary,
// picking a free port, starting a process with its output captured to a log
// file, waiting until it answers, stopping it), and each engine has a file of
// its own (redis.go, postgres.go, mariadb.go) built on them.
//
// A missing binary fails the test with a message naming the Debian package
// that provides it; it never skips, so a machine without the service cannot
// look green. scripts/install-test-deps installs the packages.
package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts are generous on purpose: the machine may be shared by many test
// binaries at once and a server can take tens of seconds to come up.
const (
	// readyTimeout bounds how long a server may take to answer after start.
	readyTimeout = 120 * time.Second
	// stopTimeout bounds a graceful stop before the process is killed.
	stopTimeout = 30 * time.Second
	// startAttempts is how often a start is retried on a fresh port when the
	// server exits early (most often: another process took the free port).
	startAttempts = 3
	// logTailBytes is how much of a server's log an error message quotes.
	logTailBytes = 4096
)

// ErrExited reports that a server process ended before it became ready.
var ErrExited = errors.New("server exited")

// lookBinary finds a server binary by name on PATH or in the extra
// directories; if it is missing, the test fails naming the Debian package.
func lookBinary(t testing.TB, name, debPkg string, extraDirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range extraDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("testserver: %s not found on PATH or in %v: install the Debian package %q (scripts/install-test-deps does)", name, extraDirs, debPkg)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// port can be taken by someone else before the server binds it; starts are
// retried on a fresh port for that reason.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testserver: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tempDir makes a directory for one server, removed when the test ends. It
// is made directly under the system temp dir rather than by t.TempDir so that
// an unprivileged server user (PostgreSQL refuses to run as root) can reach it.
func tempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "scaleout-"+prefix+"-")
	if err != nil {
		t.Fatalf("testserver: make temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// spec is everything needed to start (and restart) one server process.
type spec struct {
	name    string   // for messages, e.g. "redis-server :6380"
	path    string   // the binary
	args    []string // its arguments
	logPath string   // where its stdout and stderr go (appended)
	cred    *syscall.Credential
	// stopSignal asks the server for a quick, clean shutdown.
	stopSignal syscall.Signal
	// ready returns nil once the server answers; it is polled.
	ready func(ctx context.Context) error
}

// Process is one running server process. Stop, Kill and Restart are safe for
// concurrent use; the engine types embed it.
type Process struct {
	spec spec

	// mu guards cmd and done.
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// start launches the process described by s and waits until s.ready answers
// or the process exits; on failure the error quotes the log's tail.
func start(ctx context.Context, s spec) (*Process, error) {
	p := &Process{spec: s}
	if err := p.launch(); err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

func (p *Process) launch() error {
	logf, err := os.OpenFile(p.spec.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", p.spec.name, err)
	}
	cmd := exec.Command(p.spec.path, p.spec.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = filepath.Dir(p.spec.logPath)
	// Pdeathsig: if the test binary dies, its servers die with it instead of
	// lingering on the machine. Setpgid keeps a terminal's Ctrl-C away from
	// the server so the test's own cleanup stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true, Credential: p.spec.cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.spec.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return nil
}

// waitReady polls the readiness probe until it succeeds, the process exits
// or readyTimeout passes.
func (p *Process) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	delay := 20 * time.Millisecond
	for {
		perr := p.spec.ready(ctx)
		if perr == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s: %w before it was ready (%v); log tail:\n%s", p.spec.name, ErrExited, perr, p.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v; log tail:\n%s", p.spec.name, readyTimeout, perr, p.LogTail())
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}

// Pid returns the server's process id, or 0 before start.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process has been started and not yet exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Stop shuts the server down cleanly and waits for it; if it has not exited
// after a grace period it is killed. Stopping a stopped server does nothing.
func (p *Process) Stop() {
	p.signalAndWait(p.spec.stopSignal, stopTimeout)
}

// Kill ends the server at once with SIGKILL, as a crash would, and waits for
// the process to be gone. Killing a stopped server does nothing.
func (p *Process) Kill() {
	p.signalAndWait(syscall.SIGKILL, stopTimeout)
}

func (p *Process) signalAndWait(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// Restart starts the server again with the same arguments, data directory and
// port, after Stop or Kill (it stops a running one first), and waits until it
// answers. It is how a test brings a failed server back.
func (p *Process) Restart(ctx context.Context) error {
	p.Stop()
	if err := p.launch(); err != nil {
		return err
	}
	if err := p.waitReady(ctx); err != nil {
		p.Kill()
		return err
	}
	return nil
}

// LogPath returns the file the server's stdout and stderr go to.
func (p *Process) LogPath() string { return p.spec.logPath }

// LogTail returns the last few KB of the server's log.
func (p *Process) LogTail() string {
	f, err := os.Open(p.spec.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > logTailBytes {
		f.Seek(fi.Size()-logTailBytes, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(bytes.TrimSpace(b))
}

// startOnFreePort starts a server built by mk for a fresh free port, retrying
// on another port when the server exits early (the port may have been taken
// between FreePort and the server's bind). It registers the stop in
// t.Cleanup, and logs the server's log tail when the test failed.
func startOnFreePort(t testing.TB, mk func(port int) spec) (*Process, int) {
	t.Helper()
	var lastErr error
	for range startAttempts {
		port := FreePort(t)
		p, err := start(context.Background(), mk(port))
		if err == nil {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("testserver: log tail of %s:\n%s", p.spec.name, p.LogTail())
				}
				p.Stop()
			})
			return p, port
		}
		lastErr = err
		if !errors.Is(err, ErrExited) {
			break
		}
	}
	t.Fatalf("testserver: %v", lastErr)
	return nil, 0
}

// runTool runs a setup command (initdb, mariadb-install-db) to completion,
// with its output in the error when it fails.
func runTool(ctx context.Context, cred *syscall.Credential, dir, path string, args ...string) error {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(out) > logTailBytes {
			out = out[len(out)-logTailBytes:]
		}
		return fmt.Errorf("%s %v: %w; output:\n%s", filepath.Base(path), args, err, bytes.TrimSpace(out))
	}
	return nil
}

// hostPort joins 127.0.0.1 and a port.
func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
