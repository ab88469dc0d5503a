package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"scaleout/balancer"
	"scaleout/httpcache"
	"scaleout/httpcache/redispurge"
)

// balanceConfig is the YAML file of "scaleout balance --config"; flags set
// on the command line override it.
type balanceConfig struct {
	Listen       string          `yaml:"listen"`
	Admin        string          `yaml:"admin"`
	Policy       string          `yaml:"policy"`
	HashKey      string          `yaml:"hash_key"`
	HashBalance  float64         `yaml:"hash_balance"`
	SlowStart    Duration        `yaml:"slow_start"`
	Sticky       bool            `yaml:"sticky"`
	StickyCookie string          `yaml:"sticky_cookie"`
	StickyTTL    Duration        `yaml:"sticky_ttl"`
	SecretFile   string          `yaml:"secret_file"`
	Backends     []backendConfig `yaml:"backends"`

	MaxAttempts        int      `yaml:"max_attempts"`
	RetryBudget        float64  `yaml:"retry_budget"`
	DialTimeout        Duration `yaml:"dial_timeout"`
	ResponseTimeout    Duration `yaml:"response_timeout"`
	ReadHeaderTimeout  Duration `yaml:"read_header_timeout"`
	IdleTimeout        Duration `yaml:"idle_timeout"`
	BodyTimeout        Duration `yaml:"body_timeout"`
	MaxHeaderBytes     ByteSize `yaml:"max_header_bytes"`
	MaxConnsPerBackend int      `yaml:"max_conns_per_backend"`
	QueueSize          int      `yaml:"queue_size"`
	QueueTimeout       Duration `yaml:"queue_timeout"`
	EjectAfter         int      `yaml:"eject_after"`
	MaxEjectedShare    float64  `yaml:"max_ejected_share"`
	ShutdownGrace      Duration `yaml:"shutdown_grace"`
	LogLevel           string   `yaml:"log_level"`
	Cache              bool     `yaml:"cache"`
	CacheSize          ByteSize `yaml:"cache_size"`
	PurgeRedis         string   `yaml:"purge_redis"`

	healthConfig `yaml:",inline"`
}

type backendConfig struct {
	ID     string `yaml:"id"`
	URL    string `yaml:"url"`
	Weight int    `yaml:"weight"`
}

const balanceSynopsis = `balance [flags]

Runs the load balancer: an HTTP/1.1 reverse proxy in front of the app servers
given with --backend (or in the config file, or added later through the admin
API). A YAML file given with --config carries the same settings under the
flags' names with underscores (listen, admin, policy, sticky, secret_file,
backends: [{id, url, weight}], max_attempts, retry_budget, dial_timeout,
response_timeout, read_header_timeout, idle_timeout, body_timeout,
max_header_bytes, max_conns_per_backend, queue_size, queue_timeout,
eject_after, max_ejected_share, shutdown_grace, log_level); flags override it.

Policies: ` + "random, round-robin, least-connections, p2c (default), peak-ewma, hash"

func runBalance(ctx context.Context, env *Env, args []string) error {
	fl := newFlagSet(env, "balance", balanceSynopsis)
	configPath := fl.String("config", "", "YAML `file` with the balancer's settings")
	var c balanceConfig
	var backends stringList
	fl.StringVar(&c.Listen, "listen", ":8080", "`address` clients connect to")
	fl.StringVar(&c.Admin, "admin", "127.0.0.1:9090", "`address` of the admin API and metrics")
	fl.Var(&backends, "backend", "app server `URL` (http://host:port, repeatable; add =WEIGHT for a weight)")
	fl.StringVar(&c.Policy, "policy", "p2c", "load-balancing `policy`")
	fl.StringVar(&c.HashKey, "hash-key", "ip", "hash policy key: ip, path, header:NAME or cookie:NAME")
	c.SlowStart = Duration(10 * time.Second)
	fl.Var(&c.SlowStart, "slow-start", "how long a new or recovered member takes to reach its full share (p2c, peak-ewma; negative: off)")
	fl.BoolVar(&c.Sticky, "sticky", false, "pin each client to one app server with a signed cookie")
	fl.StringVar(&c.StickyCookie, "sticky-cookie", "scaleout_sticky", "`name` of the sticky cookie")
	fl.StringVar(&c.SecretFile, "secret-file", "", "`file` holding the key that signs cookies (created, mode 0600, when missing)")
	fl.IntVar(&c.MaxAttempts, "max-attempts", 3, "attempts per request, the first included")
	fl.IntVar(&c.MaxConnsPerBackend, "max-conns", 0, "concurrent requests per app server (0: no cap)")
	fl.IntVar(&c.QueueSize, "queue-size", 32, "requests that may wait for a capped app server")
	maxHeader := ByteSize(16 << 10)
	fl.Var(&maxHeader, "max-header-bytes", "largest request head (431 past it), like 16KiB")
	shutdownGrace := fl.Duration("shutdown-grace", 30*time.Second, "how long in-flight requests may finish on SIGTERM")
	fl.StringVar(&c.LogLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fl.StringVar(&c.HeartbeatTokenFile, "heartbeat-token-file", "", "`file` with the token app servers' heartbeats must carry (enables POST /api/heartbeat)")
	fl.IntVar(&c.LeaseIntervals, "lease-intervals", 3, "heartbeat intervals a member may miss before it leaves rotation")
	fl.StringVar(&c.Probe.Path, "probe-path", "", "`path` to probe on each member, like /healthz (empty: no active probes)")
	c.Probe.Interval, c.Probe.Timeout = Duration(2*time.Second), Duration(time.Second)
	fl.Var(&c.Probe.Interval, "probe-interval", "time between probes of a member")
	fl.Var(&c.Probe.Timeout, "probe-timeout", "time a probe may take")
	fl.IntVar(&c.Probe.Rise, "probe-rise", 2, "passing probes in a row that bring a member back")
	fl.IntVar(&c.Probe.Fall, "probe-fall", 3, "failing probes in a row that take a member out")
	fl.BoolVar(&c.Cache, "cache", false, "answer GET and HEAD from a shared HTTP cache (RFC 9111)")
	cacheSize := ByteSize(256 << 20)
	fl.Var(&cacheSize, "cache-size", "memory bound of the shared cache, like 256MB")
	fl.StringVar(&c.PurgeRedis, "purge-redis", "", "Redis `address` (host:port) whose pub/sub carries cache purges to every balancer using it (needs --cache)")
	if err := parseFlags(env, fl, args); err != nil {
		return helpIsNil(err)
	}
	if fl.NArg() > 0 {
		return usageErrorf("balance: unexpected argument %q", fl.Arg(0))
	}
	cfg := c
	if *configPath != "" {
		cfg = defaultBalanceConfig()
		if err := loadYAML(*configPath, &cfg); err != nil {
			return UsageError{Err: err}
		}
	}
	applyFlags := func(cfg *balanceConfig) error {
		overrideFromFlags(fl, cfg, &c, backends, maxHeader, *shutdownGrace)
		if isFlagSet(fl, "cache-size") || cfg.CacheSize == 0 {
			cfg.CacheSize = cacheSize
		}
		for _, s := range backends {
			bc, err := parseBackendFlag(s)
			if err != nil {
				return UsageError{Err: err}
			}
			cfg.Backends = append(cfg.Backends, bc)
		}
		return nil
	}
	if err := applyFlags(&cfg); err != nil {
		return err
	}
	return serveBalancer(ctx, env, cfg, *configPath, applyFlags)
}

// policyConfig is the policy part of the settings.
func policyConfig(cfg balanceConfig) balancer.PolicyConfig {
	return balancer.PolicyConfig{Name: cfg.Policy, HashKey: cfg.HashKey, HashBalance: cfg.HashBalance, SlowStart: time.Duration(cfg.SlowStart)}
}

// defaultBalanceConfig is what a config file starts from.
func defaultBalanceConfig() balanceConfig {
	return balanceConfig{Listen: ":8080", Admin: "127.0.0.1:9090", Policy: "p2c", HashKey: "ip", LogLevel: "info"}
}

func isFlagSet(fl *flag.FlagSet, name string) bool {
	set := false
	fl.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// overrideFromFlags copies the flags set on the command line over the
// config file's values.
func overrideFromFlags(fl *flag.FlagSet, cfg, c *balanceConfig, _ stringList, maxHeader ByteSize, grace time.Duration) {
	fl.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			cfg.Listen = c.Listen
		case "admin":
			cfg.Admin = c.Admin
		case "policy":
			cfg.Policy = c.Policy
		case "hash-key":
			cfg.HashKey = c.HashKey
		case "slow-start":
			cfg.SlowStart = c.SlowStart
		case "sticky":
			cfg.Sticky = c.Sticky
		case "sticky-cookie":
			cfg.StickyCookie = c.StickyCookie
		case "secret-file":
			cfg.SecretFile = c.SecretFile
		case "max-attempts":
			cfg.MaxAttempts = c.MaxAttempts
		case "max-conns":
			cfg.MaxConnsPerBackend = c.MaxConnsPerBackend
		case "queue-size":
			cfg.QueueSize = c.QueueSize
		case "max-header-bytes":
			cfg.MaxHeaderBytes = maxHeader
		case "shutdown-grace":
			cfg.ShutdownGrace = Duration(grace)
		case "log-level":
			cfg.LogLevel = c.LogLevel
		case "cache":
			cfg.Cache = c.Cache
		case "purge-redis":
			cfg.PurgeRedis = c.PurgeRedis
		case "heartbeat-token-file":
			cfg.HeartbeatTokenFile = c.HeartbeatTokenFile
		case "lease-intervals":
			cfg.LeaseIntervals = c.LeaseIntervals
		case "probe-path":
			cfg.Probe.Path = c.Probe.Path
		case "probe-interval":
			cfg.Probe.Interval = c.Probe.Interval
		case "probe-timeout":
			cfg.Probe.Timeout = c.Probe.Timeout
		case "probe-rise":
			cfg.Probe.Rise = c.Probe.Rise
		case "probe-fall":
			cfg.Probe.Fall = c.Probe.Fall
		}
	})
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = maxHeader
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = Duration(grace)
	}
}

// parseBackendFlag reads "URL" or "URL=WEIGHT".
func parseBackendFlag(s string) (backendConfig, error) {
	u, w, hasW := strings.Cut(s, "=")
	bc := backendConfig{URL: u, Weight: 1}
	if hasW {
		if _, err := fmt.Sscanf(w, "%d", &bc.Weight); err != nil || bc.Weight < 1 {
			return bc, fmt.Errorf("--backend %q: weight %q is not a positive integer", s, w)
		}
	}
	return bc, nil
}

// newLogger returns a text logger on w at the named level.
func newLogger(env *Env, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// balanceStack is a balancer and the parts built beside it.
type balanceStack struct {
	b      *balancer.Balancer
	cache  *httpcache.Shared  // nil without --cache
	purger *redispurge.Purger // nil without --purge-redis
	redis  *redis.Client      // the purger's client
}

// purgeTarget is what the admin API's purge reaches: every balancer on the
// Redis channel with --purge-redis, this one's cache otherwise.
func (st *balanceStack) purgeTarget() httpcache.Purger {
	if st.purger != nil {
		return st.purger
	}
	return st.cache
}

// buildPurger connects the cache to the purge channel at addr.
func buildPurger(st *balanceStack, addr string, log *slog.Logger) error {
	if st.cache == nil {
		return usageErrorf("balance: --purge-redis %s needs --cache", addr)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usageErrorf("balance: --purge-redis %q: want host:port: %v", addr, err)
	}
	st.redis = redis.NewClient(&redis.Options{Addr: addr})
	p, err := redispurge.New(redispurge.Config{Client: st.redis, Local: st.cache, Logger: log})
	if err != nil {
		st.redis.Close()
		return err
	}
	st.purger = p
	return nil
}

// buildBalancer turns the settings into a balancer with its initial pool.
func buildBalancer(cfg balanceConfig, log *slog.Logger) (*balanceStack, error) {
	sel, err := balancer.NewSelector(policyConfig(cfg))
	if err != nil {
		return nil, UsageError{Err: err}
	}
	bc := balancer.Config{
		Selector: sel, Logger: log,
		Sticky: cfg.Sticky, StickyCookie: cfg.StickyCookie, StickyTTL: time.Duration(cfg.StickyTTL),
		MaxAttempts: cfg.MaxAttempts, RetryBudget: cfg.RetryBudget,
		DialTimeout: time.Duration(cfg.DialTimeout), ResponseTimeout: time.Duration(cfg.ResponseTimeout),
		ReadHeaderTimeout: time.Duration(cfg.ReadHeaderTimeout), IdleTimeout: time.Duration(cfg.IdleTimeout),
		BodyTimeout: time.Duration(cfg.BodyTimeout), MaxHeaderBytes: int(cfg.MaxHeaderBytes),
		MaxConnsPerBackend: cfg.MaxConnsPerBackend, QueueSize: cfg.QueueSize, QueueTimeout: time.Duration(cfg.QueueTimeout),
		EjectAfter: cfg.EjectAfter, MaxEjectedShare: cfg.MaxEjectedShare, ShutdownGrace: time.Duration(cfg.ShutdownGrace),
	}
	var shared *httpcache.Shared
	if cfg.Cache {
		bc.NewCache = func(pool http.RoundTripper) (balancer.Cache, error) {
			s, err := httpcache.NewShared(httpcache.Config{Next: pool, MaxBytes: int64(cfg.CacheSize), Logger: log})
			shared = s
			return s, err
		}
	}
	if cfg.Sticky {
		secret, err := loadSecret(cfg.SecretFile, log)
		if err != nil {
			return nil, err
		}
		bc.Secret = secret
	}
	b, err := balancer.New(bc)
	if err != nil {
		return nil, UsageError{Err: err}
	}
	for _, x := range cfg.Backends {
		m, err := balancer.NewBackend(x.ID, x.URL, x.Weight)
		if err != nil {
			return nil, UsageError{Err: err}
		}
		if err := b.Add(m); err != nil {
			return nil, UsageError{Err: err}
		}
	}
	st := &balanceStack{b: b, cache: shared}
	if cfg.PurgeRedis != "" {
		if err := buildPurger(st, cfg.PurgeRedis, log); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// loadSecret reads the cookie-signing key from path, creating the file with
// 32 random bytes (hex, mode 0600) when it does not exist. With no path the
// key is random and lives as long as the process.
func loadSecret(path string, log *slog.Logger) ([]byte, error) {
	if path == "" {
		log.Warn("no --secret-file: sticky cookies are signed with a random key that dies with this process")
		key := make([]byte, 32)
		rand.Read(key)
		return key, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		rand.Read(key)
		data = []byte(hex.EncodeToString(key) + "\n")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("secret file: %w", err)
		}
		log.Info("created secret file", "path", path)
	} else if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	secret := []byte(strings.TrimSpace(string(data)))
	if len(secret) < 16 {
		return nil, fmt.Errorf("secret file %s: key shorter than 16 bytes", path)
	}
	return secret, nil
}

// serveBalancer runs the proxy and admin listeners until ctx is done. With
// a config file, SIGHUP reloads it; flagCfg re-applies the command line's
// overrides to each reload.
func serveBalancer(ctx context.Context, env *Env, cfg balanceConfig, configPath string, flagCfg func(*balanceConfig) error) error {
	log, err := newLogger(env, cfg.LogLevel)
	if err != nil {
		return UsageError{Err: err}
	}
	st, err := buildBalancer(cfg, log)
	if err != nil {
		return err
	}
	hp, err := buildHealth(cfg.healthConfig, st.b, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.Admin)
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin listen: %w", err)
	}
	log.Info("balancing", "listen", ln.Addr().String(), "admin", adminLn.Addr().String(), "policy", cfg.Policy, "members", len(cfg.Backends))
	g, gctx := errgroup.WithContext(ctx)
	if configPath != "" {
		g.Go(func() error { return reloadOnHUP(gctx, configPath, flagCfg, st.b, log) })
	}
	hp.run(gctx, g)
	g.Go(func() error { return runServers(gctx, st, ln, adminLn, adminHandler(st, hp, nil)) })
	return g.Wait()
}

// runServers serves the proxy on ln and the admin handler on adminLn until
// ctx is done, then shuts both down gracefully.
func runServers(ctx context.Context, st *balanceStack, ln, adminLn net.Listener, admin http.Handler) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return st.b.Serve(gctx, ln) })
	if st.cache != nil {
		g.Go(func() error { return st.cache.Run(gctx) })
	}
	if st.purger != nil {
		g.Go(func() error {
			defer st.redis.Close()
			return st.purger.Run(gctx)
		})
	}
	srv := &http.Server{Handler: admin, ReadHeaderTimeout: 10 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}
