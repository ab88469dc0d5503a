// Package localproc is an autoscale.Provider that runs instances as local
// processes from a command template, each on a free loopback port:
//
//	scaleout app --listen 127.0.0.1:{port} --id {id}
//
// Each instance's stdout and stderr go to a bounded buffer (Logs). Stop
// sends SIGTERM, then SIGKILL after a grace period. A process that exits on
// its own closes its Instance.Exited channel, which the Scaler takes as a
// crash and replaces. On Linux a child is also killed by the kernel if the
// parent dies without stopping it, so none is left behind.
package localproc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"scaleout/autoscale"
)

// ErrConfig wraps every error New returns for a bad Config.
var ErrConfig = errors.New("localproc: invalid config")

// Config configures a Provider. Command is required.
type Config struct {
	// Command is the program and its arguments. In every argument (and in
	// Env), {port} becomes a free loopback port chosen per instance, {addr}
	// becomes host:port, {url} the instance's base URL and {id} its unique
	// id, which the instance must use in its heartbeats.
	Command []string
	// Env is added to the parent's environment for each child.
	Env []string
	// Dir is the children's working directory. If empty, the parent's.
	Dir string
	// Host is the loopback address instances listen on. If empty,
	// 127.0.0.1.
	Host string
	// IDPrefix starts every instance id; a random run token and a counter
	// follow, so ids are unique across restarts of the parent (a balancer
	// may still remember an old id). If empty, "app-".
	IDPrefix string
	// Grace is how long Stop waits after SIGTERM before SIGKILL. If zero,
	// 10s.
	Grace time.Duration
	// ReadyTimeout bounds how long Start waits for the instance's port to
	// accept connections. If zero, 30s; if negative, Start does not wait.
	ReadyTimeout time.Duration
	// LogBytes is how much of each instance's output is kept. If zero,
	// 64 KiB.
	LogBytes int
	// KeepExited is how many exited instances' logs are kept. If zero, 16.
	KeepExited int
	// Logger receives starts, stops and crashes. If nil, nothing is logged.
	Logger *slog.Logger
}

var placeholder = regexp.MustCompile(`\{[a-z]*\}`)

func (c *Config) setDefaults() error {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return fmt.Errorf("%w: command is empty", ErrConfig)
	}
	for _, s := range append(append([]string(nil), c.Command...), c.Env...) {
		for _, p := range placeholder.FindAllString(s, -1) {
			if p != "{port}" && p != "{addr}" && p != "{url}" && p != "{id}" {
				return fmt.Errorf("%w: %q: unknown placeholder %s (want {port}, {addr}, {url} or {id})", ErrConfig, s, p)
			}
		}
	}
	if c.Grace < 0 || c.LogBytes < 0 || c.KeepExited < 0 {
		return fmt.Errorf("%w: grace, log bytes and keep exited must not be negative", ErrConfig)
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if ip := net.ParseIP(c.Host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: host %q is not a loopback address", ErrConfig, c.Host)
	}
	if c.IDPrefix == "" {
		c.IDPrefix = "app-"
	}
	if c.Grace == 0 {
		c.Grace = 10 * time.Second
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 30 * time.Second
	}
	if c.LogBytes == 0 {
		c.LogBytes = 64 << 10
	}
	if c.KeepExited == 0 {
		c.KeepExited = 16
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Provider runs instances as child processes. It is safe for concurrent
// use. Its owner must stop what it started: the Scaler does so when Run
// returns, and StopAll is there for anyone else.
type Provider struct {
	cfg   Config
	token string

	// mu guards next, procs and exited.
	mu     sync.Mutex
	next   int
	procs  map[string]*proc
	exited []*proc // most recent last, at most KeepExited
}

// proc is one child.
type proc struct {
	id, url string
	cmd     *exec.Cmd
	out     *ring
	done    chan struct{} // closed once the process has been reaped
	err     error         // Wait's result, set before done is closed

	// stopping is set by Stop before it signals, so the exit is not a crash.
	stopping bool
}

// New validates cfg and returns a Provider. It starts nothing.
func New(cfg Config) (*Provider, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	var b [3]byte
	rand.Read(b[:])
	return &Provider{cfg: cfg, token: hex.EncodeToString(b[:]), procs: map[string]*proc{}}, nil
}

// Start launches one instance and, unless ReadyTimeout is negative, waits
// until its port accepts connections. If the process exits first, the
// error carries the tail of its output.
func (p *Provider) Start(ctx context.Context) (autoscale.Instance, error) {
	port, err := freePort(p.cfg.Host)
	if err != nil {
		return autoscale.Instance{}, fmt.Errorf("start: %w", err)
	}
	p.mu.Lock()
	p.next++
	id := p.cfg.IDPrefix + p.token + "-" + strconv.Itoa(p.next)
	p.mu.Unlock()
	addr := net.JoinHostPort(p.cfg.Host, strconv.Itoa(port))
	pr := &proc{id: id, url: "http://" + addr, out: newRing(p.cfg.LogBytes), done: make(chan struct{})}
	expand := strings.NewReplacer("{port}", strconv.Itoa(port), "{addr}", addr, "{url}", pr.url, "{id}", id).Replace
	args := make([]string, len(p.cfg.Command))
	for i, a := range p.cfg.Command {
		args[i] = expand(a)
	}
	// Not CommandContext: ctx bounds the launch, not the instance's life.
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = os.Environ()
	for _, e := range p.cfg.Env {
		cmd.Env = append(cmd.Env, expand(e))
	}
	cmd.Dir, cmd.Stdout, cmd.Stderr = p.cfg.Dir, pr.out, pr.out
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = p.cfg.Grace // a grandchild holding the pipes must not block the reaper
	pr.cmd = cmd
	if err := cmd.Start(); err != nil {
		return autoscale.Instance{}, fmt.Errorf("start %s: %w", id, err)
	}
	p.mu.Lock()
	p.procs[id] = pr
	p.mu.Unlock()
	go p.reap(pr)
	p.cfg.Logger.Info("instance started", "id", id, "url", pr.url, "pid", cmd.Process.Pid)
	if err := p.waitReady(ctx, pr, addr); err != nil {
		p.Stop(context.WithoutCancel(ctx), id)
		return autoscale.Instance{}, err
	}
	return autoscale.Instance{ID: id, URL: pr.url, Exited: pr.done}, nil
}

// freePort asks the kernel for a free port on host. Another process may
// take it before the child binds it; the child then fails and the Scaler
// starts another.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls addr until it accepts a connection.
func (p *Provider) waitReady(ctx context.Context, pr *proc, addr string) error {
	if p.cfg.ReadyTimeout < 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ReadyTimeout)
	defer cancel()
	var d net.Dialer
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 250*time.Millisecond) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-pr.done:
			return fmt.Errorf("start %s: exited before listening on %s: %v; output: %s", pr.id, addr, pr.err, tail(pr.out, 512))
		case <-ctx.Done():
			return fmt.Errorf("start %s: not listening on %s: %w", pr.id, addr, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// reap waits for pr to end, reports a crash, and moves its logs to the
// exited list.
func (p *Provider) reap(pr *proc) {
	err := pr.cmd.Wait()
	p.mu.Lock()
	pr.err = err
	crashed := !pr.stopping
	delete(p.procs, pr.id)
	p.exited = append(p.exited, pr)
	if len(p.exited) > p.cfg.KeepExited {
		p.exited = p.exited[len(p.exited)-p.cfg.KeepExited:]
	}
	p.mu.Unlock()
	close(pr.done)
	if crashed {
		p.cfg.Logger.Warn("instance exited unasked", "id", pr.id, "err", err, "output", tail(pr.out, 512))
	} else {
		p.cfg.Logger.Info("instance stopped", "id", pr.id, "err", err)
	}
}

func tail(r *ring, n int) string {
	b, _ := r.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

// Stop sends SIGTERM to instance id, then SIGKILL after Grace (or at once
// if ctx ends first), and returns once the process has been reaped. An id
// that already exited, or was never started here, is not an error.
func (p *Provider) Stop(ctx context.Context, id string) error {
	p.mu.Lock()
	pr, ok := p.procs[id]
	if ok {
		pr.stopping = true
	}
	p.mu.Unlock()
	if !ok {
		return nil
	}
	if err := pr.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		pr.cmd.Process.Kill() // no SIGTERM on this platform
	}
	grace := time.NewTimer(p.cfg.Grace)
	defer grace.Stop()
	select {
	case <-pr.done:
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}
	p.cfg.Logger.Warn("instance ignored SIGTERM; killing", "id", id, "grace", p.cfg.Grace)
	pr.cmd.Process.Kill()
	<-pr.done // SIGKILL cannot be ignored; Wait returns within WaitDelay
	return nil
}

// StopAll stops every running instance at once, as Stop does.
func (p *Provider) StopAll(ctx context.Context) {
	p.mu.Lock()
	ids := make([]string, 0, len(p.procs))
	for id := range p.procs {
		ids = append(ids, id)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() { p.Stop(ctx, id) })
	}
	wg.Wait()
}

// Logs returns the kept tail of instance id's output (running, or among
// the last KeepExited to exit) and how many bytes it wrote in all.
func (p *Provider) Logs(id string) (tail []byte, total int64, ok bool) {
	p.mu.Lock()
	pr, ok := p.procs[id]
	for i := len(p.exited) - 1; !ok && i >= 0; i-- {
		pr, ok = p.exited[i], p.exited[i].id == id
	}
	p.mu.Unlock()
	if !ok {
		return nil, 0, false
	}
	tail, total = pr.out.Bytes()
	return tail, total, true
}

// Running returns the ids of the instances running now.
func (p *Provider) Running() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.procs))
	for id := range p.procs {
		ids = append(ids, id)
	}
	return ids
}
