// Package hook is an autoscale.Provider that runs a user's command to add
// or remove a server anywhere: a cloud CLI, a container runtime, an
// inventory script. The protocol is two calls:
//
//	COMMAND... add          # start a server; print "ID URL" as the last line of stdout
//	COMMAND... remove ID    # stop server ID; exit 0 once it is gone
//
// ID is 1-128 bytes of [A-Za-z0-9._:-] and must be the id the server's
// heartbeats carry; URL is its http or https base URL. Earlier stdout lines
// and all of stderr are logged. A non-zero exit is a failure whose error
// carries the tail of stderr. The server joins the balancer by heartbeat;
// the hook only starts and stops it.
package hook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"scaleout/autoscale"
)

// Errors returned by this package, matched with errors.Is.
var (
	// ErrConfig wraps every error New returns for a bad Config.
	ErrConfig = errors.New("hook: invalid config")
	// ErrBadOutput wraps an error for "add" output that is not "ID URL".
	ErrBadOutput = errors.New("hook: bad add output")
)

// Config configures a Provider. Command is required.
type Config struct {
	// Command is the hook program and any leading arguments; "add" or
	// "remove ID" is appended.
	Command []string
	// Env is added to the parent's environment for the hook.
	Env []string
	// Dir is the hook's working directory. If empty, the parent's.
	Dir string
	// Timeout bounds one run of the hook (Start's or Stop's context may end
	// it sooner). If zero, 2 min.
	Timeout time.Duration
	// Parallel is how many runs of the hook may overlap. If zero, 1: runs
	// are serialized, so a simple script need not lock its inventory.
	Parallel int
	// Logger receives the hook's output and what it added or removed. If
	// nil, nothing is logged.
	Logger *slog.Logger
}

// Provider runs the hook. Safe for concurrent use; runs overlap only as
// far as Config.Parallel allows.
type Provider struct {
	cfg Config
	sem chan struct{} // Parallel slots

	// mu guards added.
	mu    sync.Mutex
	added map[string]bool
}

// maxOutput bounds what is read of the hook's stdout and stderr.
const maxOutput = 64 << 10

// New validates cfg and returns a Provider. It runs nothing.
func New(cfg Config) (*Provider, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, fmt.Errorf("%w: command is empty", ErrConfig)
	}
	if cfg.Timeout < 0 || cfg.Parallel < 0 {
		return nil, fmt.Errorf("%w: timeout %v and parallel %d must not be negative", ErrConfig, cfg.Timeout, cfg.Parallel)
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Provider{cfg: cfg, sem: make(chan struct{}, cfg.Parallel), added: map[string]bool{}}, nil
}

// Start runs "COMMAND add" and returns the server it printed. Its
// Instance.Exited is nil: the hook cannot tell when a server dies.
func (p *Provider) Start(ctx context.Context) (autoscale.Instance, error) {
	out, err := p.run(ctx, "add")
	if err != nil {
		return autoscale.Instance{}, fmt.Errorf("hook add: %w", err)
	}
	id, u, err := parseAdd(out)
	if err != nil {
		return autoscale.Instance{}, fmt.Errorf("hook add: %w", err)
	}
	p.mu.Lock()
	dup := p.added[id]
	p.added[id] = true
	p.mu.Unlock()
	if dup {
		return autoscale.Instance{}, fmt.Errorf("hook add: %w: id %q is already running", ErrBadOutput, id)
	}
	p.cfg.Logger.Info("hook added server", "id", id, "url", u)
	return autoscale.Instance{ID: id, URL: u}, nil
}

// Stop runs "COMMAND remove ID". An id this Provider did not add is not
// passed to the hook and is not an error.
func (p *Provider) Stop(ctx context.Context, id string) error {
	p.mu.Lock()
	known := p.added[id]
	p.mu.Unlock()
	if !known {
		return nil
	}
	if _, err := p.run(ctx, "remove", id); err != nil {
		return fmt.Errorf("hook remove %s: %w", id, err)
	}
	p.mu.Lock()
	delete(p.added, id)
	p.mu.Unlock()
	p.cfg.Logger.Info("hook removed server", "id", id)
	return nil
}

// run runs the hook with args and returns its stdout.
func (p *Provider) run(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: waiting for a parallel slot: %w", strings.Join(args, " "), ctx.Err())
	}
	cmd := exec.CommandContext(ctx, p.cfg.Command[0], append(p.cfg.Command[1:len(p.cfg.Command):len(p.cfg.Command)], args...)...)
	cmd.Env = append(os.Environ(), p.cfg.Env...)
	cmd.Dir = p.cfg.Dir
	cmd.WaitDelay = 5 * time.Second // a child of the hook holding its pipes must not hang us
	var stdout, stderr limited
	stdout.max, stderr.max = maxOutput, maxOutput
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		p.cfg.Logger.Info("hook output", "args", args, "stderr", s)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("%s: %w; stderr: %s", strings.Join(args, " "), err, tailOf(stderr.String(), 512))
	}
	return stdout.Bytes(), nil
}

// limited keeps the first max bytes written and discards the rest.
type limited struct {
	bytes.Buffer
	max int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.max - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func tailOf(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// parseAdd reads "ID URL" from the last non-empty line of out.
func parseAdd(out []byte) (id, rawURL string, err error) {
	lines := strings.Split(strings.TrimRight(string(out), " \t\r\n"), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return "", "", fmt.Errorf("%w: no output; want a last line \"ID URL\"", ErrBadOutput)
	}
	f := strings.Fields(last)
	if len(f) != 2 {
		return "", "", fmt.Errorf("%w: last line %.80q has %d fields; want \"ID URL\"", ErrBadOutput, last, len(f))
	}
	if err := checkID(f[0]); err != nil {
		return "", "", err
	}
	u, err := url.Parse(f[1])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%w: URL %.80q: want http(s)://host[:port] with no path, query or user", ErrBadOutput, f[1])
	}
	return f[0], strings.TrimSuffix(u.String(), "/"), nil
}

// checkID applies the heartbeat's id rule: 1-128 bytes of [A-Za-z0-9._:-].
func checkID(id string) error {
	if len(id) > 128 {
		return fmt.Errorf("%w: id is %d bytes; want at most 128", ErrBadOutput, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return fmt.Errorf("%w: id %.80q: byte %d is %q; want [A-Za-z0-9._:-]", ErrBadOutput, id, i, c)
		}
	}
	return nil
}
