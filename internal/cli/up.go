package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"scaleout/autoscale"
	"scaleout/autoscale/localproc"
	"scaleout/balancer"
	"scaleout/cache/respserver"
)

const upSynopsis = `up [flags]

Runs the whole stack on this machine with nothing else installed: the
balancer on --listen (with its shared HTTP cache), the admin API and the
dashboard on --admin, and an autoscaled pool of "scaleout app" processes that
join the balancer by heartbeat and share their sessions, cache and SQLite
database. Ctrl-C stops everything; no process is left behind.`

// upConfig are the settings of "scaleout up"; a YAML file given with
// --config carries them under the same names with underscores.
type upConfig struct {
	Listen          string   `yaml:"listen"`
	Admin           string   `yaml:"admin"`
	Data            string   `yaml:"data"`
	Policy          string   `yaml:"policy"`
	Sticky          bool     `yaml:"sticky"`
	Cache           bool     `yaml:"cache"`
	CacheSize       ByteSize `yaml:"cache_size"`
	Min             int      `yaml:"min"`
	Max             int      `yaml:"max"`
	Metric          string   `yaml:"metric"`
	Target          float64  `yaml:"target"`
	Interval        Duration `yaml:"interval"`
	ScaleDownWindow Duration `yaml:"scale_down_window"`
	Sessions        string   `yaml:"sessions"`
	Work            Duration `yaml:"work"`
	Heartbeat       Duration `yaml:"heartbeat"`
	LogLevel        string   `yaml:"log_level"`
}

func defaultUpConfig() upConfig {
	return upConfig{
		Listen: ":8080", Admin: "127.0.0.1:9090", Policy: "p2c", Cache: true, CacheSize: 256 << 20,
		Min: 2, Max: 8, Metric: "in_flight", Interval: Duration(2 * time.Second),
		ScaleDownWindow: Duration(time.Minute), Sessions: "sqlite", Heartbeat: Duration(250 * time.Millisecond),
		LogLevel: "info",
	}
}

func runUp(ctx context.Context, env *Env, args []string) error {
	fl := newFlagSet(env, "up", upSynopsis)
	c := defaultUpConfig()
	configPath := fl.String("config", "", "YAML `file` with these settings (flags override it)")
	fl.StringVar(&c.Listen, "listen", c.Listen, "`address` clients connect to")
	fl.StringVar(&c.Admin, "admin", c.Admin, "`address` of the admin API and the dashboard")
	fl.StringVar(&c.Data, "data", "", "`directory` for the shared SQLite files and secrets (default: a new temporary one, removed on exit)")
	fl.StringVar(&c.Policy, "policy", c.Policy, "load-balancing `policy`")
	fl.BoolVar(&c.Sticky, "sticky", c.Sticky, "pin each client to one app server with a signed cookie")
	fl.BoolVar(&c.Cache, "cache", c.Cache, "answer GET and HEAD from the balancer's shared HTTP cache")
	fl.Var(&c.CacheSize, "cache-size", "memory bound of the shared HTTP cache, like 256MB")
	fl.IntVar(&c.Min, "min", c.Min, "fewest app servers")
	fl.IntVar(&c.Max, "max", c.Max, "most app servers")
	fl.StringVar(&c.Metric, "metric", c.Metric, "what the autoscaler follows: in_flight (per member), p95_latency (ms) or queue")
	fl.Float64Var(&c.Target, "target", c.Target, "the metric's target value (0: its default, 10 requests in flight per member, 250 ms p95 or 1 queued per member)")
	fl.Var(&c.Interval, "interval", "time between autoscaling decisions")
	fl.Var(&c.ScaleDownWindow, "scale-down-window", "how long load must stay low before the pool shrinks")
	fl.StringVar(&c.Sessions, "sessions", c.Sessions, "where sessions live: sqlite (a shared store) or cookie (signed cookies)")
	fl.Var(&c.Work, "work", "artificial CPU cost per request in each app server, like 2ms")
	fl.Var(&c.Heartbeat, "heartbeat", "time between app servers' heartbeats")
	fl.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log `level`: debug, info, warn or error")
	if err := parseFlags(env, fl, args); err != nil {
		return helpIsNil(err)
	}
	if fl.NArg() > 0 {
		return usageErrorf("up: unexpected argument %q", fl.Arg(0))
	}
	if *configPath != "" {
		fileCfg := defaultUpConfig()
		if err := loadYAML(*configPath, &fileCfg); err != nil {
			return UsageError{Err: err}
		}
		flagCfg := c
		c = fileCfg
		fl.Visit(func(f *flag.Flag) { applyUpFlag(&c, &flagCfg, f.Name) })
	}
	if err := c.validate(); err != nil {
		return UsageError{Err: err}
	}
	log, err := newLogger(env, c.LogLevel)
	if err != nil {
		return UsageError{Err: err}
	}
	return serveUp(ctx, env, c, log)
}

func (c *upConfig) validate() error {
	switch {
	case c.Min < 1 || c.Max < c.Min || c.Max > 64:
		return fmt.Errorf("up: min %d, max %d: want 1 <= min <= max <= 64", c.Min, c.Max)
	case c.Target < 0:
		return fmt.Errorf("up: target %g must not be negative", c.Target)
	case c.Sessions != "sqlite" && c.Sessions != "cookie":
		return fmt.Errorf("up: sessions %q: want sqlite or cookie", c.Sessions)
	case time.Duration(c.Work) > time.Second:
		return fmt.Errorf("up: work %v: want at most 1s", time.Duration(c.Work))
	case time.Duration(c.Heartbeat) < 50*time.Millisecond || time.Duration(c.Heartbeat) > time.Minute:
		return fmt.Errorf("up: heartbeat %v: want 50ms to 1m", time.Duration(c.Heartbeat))
	case time.Duration(c.Interval) < 100*time.Millisecond:
		return fmt.Errorf("up: interval %v: want at least 100ms", time.Duration(c.Interval))
	}
	if _, err := autoscale.ParseMetric(c.Metric); err != nil {
		return err
	}
	return nil
}

// serveUp starts the balancer, then the autoscaled pool, and stops both
// when ctx is done.
func serveUp(ctx context.Context, env *Env, c upConfig, log *slog.Logger) error {
	data := c.Data
	if data == "" {
		dir, err := os.MkdirTemp("", "scaleout-up-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		data = dir
	} else if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	tokenPath := filepath.Join(data, "heartbeat-token")
	if err := writeRandomFile(tokenPath); err != nil {
		return err
	}
	bcfg := defaultBalanceConfig()
	bcfg.Listen, bcfg.Admin, bcfg.Policy, bcfg.Sticky = c.Listen, c.Admin, c.Policy, c.Sticky
	bcfg.Cache, bcfg.CacheSize, bcfg.LogLevel = c.Cache, c.CacheSize, c.LogLevel
	bcfg.SecretFile = filepath.Join(data, "sticky-secret")
	bcfg.HeartbeatTokenFile = tokenPath
	bcfg.SlowStart = Duration(5 * time.Second)
	st, err := buildBalancer(bcfg, log)
	if err != nil {
		return err
	}
	hp, err := buildHealth(bcfg.healthConfig, st.b, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	adminLn, err := net.Listen("tcp", c.Admin)
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin listen: %w", err)
	}
	cacheLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		adminLn.Close()
		return fmt.Errorf("cache listen: %w", err)
	}
	cacheSrv, err := respserver.New(respserver.Config{Logger: log})
	if err != nil {
		return err
	}
	adminURL := "http://" + adminLn.Addr().String()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	command := []string{self, "app", "--listen", "{addr}", "--id", "{id}", "--data", data,
		"--balancer", adminURL, "--token-file", tokenPath, "--heartbeat-interval", time.Duration(c.Heartbeat).String(),
		"--sessions", c.Sessions, "--work", time.Duration(c.Work).String(), "--log-level", "warn",
		"--cache-addr", cacheLn.Addr().String()}
	scaler, err := buildScaler(c, st.b, command, log)
	if err != nil {
		ln.Close()
		adminLn.Close()
		return err
	}
	fmt.Fprintf(env.Stdout, "scaleout up: balancer on http://%s, dashboard and admin API on %s/\n", displayAddr(ln.Addr()), adminURL)
	fmt.Fprintf(env.Stdout, "  %d to %d app servers, autoscaled on %s (target %g), data in %s\n", c.Min, c.Max, c.Metric, scaler.Stats().Target, data)
	fmt.Fprintf(env.Stdout, "  shared server-side cache (Redis protocol) on %s\n", cacheLn.Addr())
	fmt.Fprintf(env.Stdout, "  try: scaleout bench http://%s/flights --rate 500 --duration 30s\n", displayAddr(ln.Addr()))
	fmt.Fprintf(env.Stdout, "  Ctrl-C stops everything.\n")

	// On the way out the app servers go first, while the balancer still
	// takes their "leaving" heartbeats and serves what they finish; then
	// the balancer stops.
	scalerCtx, stopScaler := context.WithCancel(context.Background())
	serversCtx, stopServers := context.WithCancel(context.Background())
	defer stopScaler()
	defer stopServers()
	g, gctx := errgroup.WithContext(ctx)
	scalerDone := make(chan struct{})
	g.Go(func() error { defer close(scalerDone); return scaler.Run(scalerCtx) })
	hp.run(serversCtx, g)
	g.Go(func() error { return cacheSrv.Serve(serversCtx, cacheLn) })
	extra := func() map[string]any { return map[string]any{"autoscaler": scaler.Stats()} }
	g.Go(func() error { return runServers(serversCtx, st, ln, adminLn, adminHandler(st, hp, extra)) })
	g.Go(func() error {
		<-gctx.Done()
		stopScaler()
		<-scalerDone
		stopServers()
		return nil
	})
	err = g.Wait()
	fmt.Fprintln(env.Stdout, "scaleout up: stopped")
	return err
}

// buildScaler builds the autoscaler: local app processes from command,
// observed and drained through the balancer.
func buildScaler(c upConfig, b *balancer.Balancer, command []string, log *slog.Logger) (*autoscale.Scaler, error) {
	prov, err := localproc.New(localproc.Config{Command: command, Grace: 20 * time.Second, Logger: log})
	if err != nil {
		return nil, err
	}
	drainer, err := autoscale.NewPoolDrainer(autoscale.PoolDrainerConfig{Pool: scalerPool{b}, Timeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	metric, _ := autoscale.ParseMetric(c.Metric)
	return autoscale.New(autoscale.Config{
		Min: c.Min, Max: c.Max, Metric: metric, Target: c.Target,
		Interval: time.Duration(c.Interval), ScaleDownWindow: time.Duration(c.ScaleDownWindow),
		Source:   newObserver(b),
		Provider: prov, Drainer: drainer, Logger: log,
	})
}

// observer is what the autoscaler sees of the pool: each member's
// in-flight requests and whether it is in rotation, the requests queued at
// the balancer, and the p95 latency since the previous observation.
type observer struct {
	b *balancer.Balancer
	// prev is the latency histogram at the previous observation; only
	// the Scaler's goroutine calls Observe.
	prev []uint64
}

func newObserver(b *balancer.Balancer) *observer { return &observer{b: b} }

// Observe implements autoscale.Source.
func (o *observer) Observe(context.Context) (autoscale.Observation, error) {
	st := o.b.Stats()
	obs := autoscale.Observation{Members: make([]autoscale.Member, 0, len(st.Members)), Queue: st.Queued}
	for _, m := range st.Members {
		obs.Members = append(obs.Members, autoscale.Member{
			ID: m.ID, InFlight: m.InFlight,
			Ready: m.State == "ready" && !m.Ejected && m.Healthy && !m.LeaseExpired,
		})
	}
	bounds, counts := o.b.LatencyHistogram()
	obs.P95 = p95Since(bounds, o.prev, counts)
	o.prev = counts
	return obs, nil
}

// p95Since is the 95th percentile of the requests counted between two
// histogram snapshots, as the upper bound of its bucket (the top bucket
// counts as twice the largest bound); zero when none were answered.
func p95Since(bounds []time.Duration, prev, now []uint64) time.Duration {
	delta := make([]uint64, len(now))
	var total uint64
	for i := range now {
		if i < len(prev) && prev[i] <= now[i] {
			delta[i] = now[i] - prev[i]
		} else if i >= len(prev) {
			delta[i] = now[i]
		}
		total += delta[i]
	}
	if total == 0 {
		return 0
	}
	var cum uint64
	for i, d := range delta {
		cum += d
		if float64(cum) >= 0.95*float64(total) {
			if i < len(bounds) {
				return bounds[i]
			}
			break
		}
	}
	return 2 * bounds[len(bounds)-1]
}

// scalerPool adapts the balancer to autoscale.Pool for draining.
type scalerPool struct{ b *balancer.Balancer }

func (p scalerPool) SetDraining(id string) error { return p.b.SetState(id, balancer.Draining) }

func (p scalerPool) InFlight(id string) (int64, bool) {
	m, ok := p.b.Backend(id)
	if !ok {
		return 0, false
	}
	return m.InFlight(), true
}

// writeRandomFile writes 32 random bytes, hex encoded, to path (mode 0600)
// unless the file exists.
func writeRandomFile(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// displayAddr shows a wildcard listener as localhost.
func displayAddr(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		return fmt.Sprintf("localhost:%d", ta.Port)
	}
	return a.String()
}

// applyUpFlag copies one flag set on the command line over the file's value.
func applyUpFlag(c, f *upConfig, name string) {
	switch name {
	case "listen":
		c.Listen = f.Listen
	case "admin":
		c.Admin = f.Admin
	case "data":
		c.Data = f.Data
	case "policy":
		c.Policy = f.Policy
	case "sticky":
		c.Sticky = f.Sticky
	case "cache":
		c.Cache = f.Cache
	case "cache-size":
		c.CacheSize = f.CacheSize
	case "min":
		c.Min = f.Min
	case "max":
		c.Max = f.Max
	case "metric":
		c.Metric = f.Metric
	case "target":
		c.Target = f.Target
	case "interval":
		c.Interval = f.Interval
	case "scale-down-window":
		c.ScaleDownWindow = f.ScaleDownWindow
	case "sessions":
		c.Sessions = f.Sessions
	case "work":
		c.Work = f.Work
	case "heartbeat":
		c.Heartbeat = f.Heartbeat
	case "log-level":
		c.LogLevel = f.LogLevel
	}
}
