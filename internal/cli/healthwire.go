package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"scaleout/balancer"
	"scaleout/health"
	"scaleout/httpcache"
	"scaleout/internal/dashboard"
)

// healthConfig are the balancer's health settings in its config file.
type healthConfig struct {
	HeartbeatTokenFile string      `yaml:"heartbeat_token_file"`
	LeaseIntervals     int         `yaml:"lease_intervals"`
	HeartbeatGrace     Duration    `yaml:"heartbeat_grace"`
	Probe              probeConfig `yaml:"probe"`
}

type probeConfig struct {
	Path         string   `yaml:"path"`
	Interval     Duration `yaml:"interval"`
	Timeout      Duration `yaml:"timeout"`
	Rise         int      `yaml:"rise"`
	Fall         int      `yaml:"fall"`
	ExpectStatus int      `yaml:"expect_status"`
}

// poolAdapter lets package health drive the balancer's pool; health
// declares what it needs and never imports the balancer.
type poolAdapter struct{ b *balancer.Balancer }

func (p poolAdapter) Upsert(m health.Member) error {
	return p.b.Upsert(m.ID, m.URL, m.Weight, m.Capacity, m.InFlight)
}

func (p poolAdapter) SetState(id string, s health.MemberState) error {
	// A lease that ran out is a health signal like a failing probe, so the
	// guard bounds how much of the pool it can take out.
	switch s {
	case health.StateReady:
		if err := p.b.SetLeaseExpired(id, false); err != nil {
			return err
		}
		return p.b.SetState(id, balancer.Ready)
	case health.StateDraining:
		return p.b.SetState(id, balancer.Draining)
	case health.StateDown:
		return p.b.SetLeaseExpired(id, true)
	}
	return fmt.Errorf("member %s: unknown state %q", id, s)
}

func (p poolAdapter) Remove(id string) error { return p.b.Remove(id) }

func (p poolAdapter) Targets() []health.Target {
	ms := p.b.Backends()
	out := make([]health.Target, 0, len(ms))
	for _, m := range ms {
		out = append(out, health.Target{ID: m.ID, URL: m.URL.String()})
	}
	return out
}

func (p poolAdapter) SetHealthy(id string, healthy bool) { p.b.SetHealthy(id, healthy) }

// healthParts are the health loops built for a balancer; nil parts are off.
type healthParts struct {
	registry *health.Registry
	prober   *health.Prober
}

// buildHealth builds the heartbeat registry (when a token file is given)
// and the active prober (when a probe path is given).
func buildHealth(hc healthConfig, b *balancer.Balancer, log *slog.Logger) (*healthParts, error) {
	hp := &healthParts{}
	pa := poolAdapter{b}
	if hc.HeartbeatTokenFile != "" {
		token, err := readToken(hc.HeartbeatTokenFile)
		if err != nil {
			return nil, err
		}
		r, err := health.NewRegistry(health.RegistryConfig{Pool: pa, Token: token, LeaseIntervals: hc.LeaseIntervals, Grace: time.Duration(hc.HeartbeatGrace), Logger: log})
		if err != nil {
			return nil, UsageError{Err: err}
		}
		hp.registry = r
	}
	if p := hc.Probe; p.Path != "" {
		pr, err := health.NewProber(health.ProberConfig{
			Targets: pa, Status: pa, Path: p.Path, Interval: time.Duration(p.Interval), Timeout: time.Duration(p.Timeout),
			Rise: p.Rise, Fall: p.Fall, ExpectStatus: p.ExpectStatus, Logger: log,
		})
		if err != nil {
			return nil, UsageError{Err: err}
		}
		hp.prober = pr
	}
	return hp, nil
}

// run runs the health loops until ctx is done.
func (hp *healthParts) run(ctx context.Context, g interface{ Go(func() error) }) {
	if hp.registry != nil {
		g.Go(func() error { return hp.registry.Run(ctx) })
	}
	if hp.prober != nil {
		g.Go(func() error { return hp.prober.Run(ctx) })
	}
}

// readToken reads a bearer token from a file: its first line, trimmed.
func readToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	tok = strings.TrimSpace(tok)
	if len(tok) < 16 {
		return "", fmt.Errorf("token file %s: token shorter than 16 characters", path)
	}
	return tok, nil
}

// adminHandler is the admin listener's handler: the balancer's API, the
// heartbeat endpoint, one /metrics for all parts, and the dashboard.
func adminHandler(st *balanceStack, hp *healthParts, extra func() map[string]any) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", st.b.AdminHandler())
	if hp.registry != nil {
		mux.Handle(health.HeartbeatPath, hp.registry.Handler())
	}
	if st.cache != nil {
		mux.Handle("POST /api/cache/purge", httpcache.PurgeHandler(st.purgeTarget()))
	}
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		st.b.WriteMetrics(w)
		if hp.registry != nil {
			hp.registry.WriteMetrics(w)
		}
		if st.cache != nil {
			writeCacheMetrics(w, st.cache.Stats())
		}
	})
	dash := dashboard.Handler(func() any {
		snap := map[string]any{"balancer": st.b.Stats()}
		if st.cache != nil {
			snap["http_cache"] = st.cache.Stats()
		}
		if hp.registry != nil {
			snap["heartbeats"] = hp.registry.Stats()
		}
		if hp.prober != nil {
			snap["probes"] = hp.prober.Stats()
		}
		if extra != nil {
			for k, v := range extra() {
				snap[k] = v
			}
		}
		return snap
	})
	mux.Handle("GET /{$}", dash)
	mux.Handle("GET /api/dashboard", dash)
	return mux
}

func writeCacheMetrics(w http.ResponseWriter, s httpcache.Stats) {
	for _, c := range []struct {
		name string
		v    uint64
	}{
		{"hits", s.Hits}, {"misses", s.Misses}, {"stale_served", s.StaleServed}, {"revalidations", s.Revalidations},
		{"collapsed", s.Collapsed}, {"stored", s.Stored}, {"evicted", s.Evicted}, {"purged", s.Purged},
	} {
		fmt.Fprintf(w, "# TYPE scaleout_http_cache_%s_total counter\nscaleout_http_cache_%s_total %d\n", c.name, c.name, c.v)
	}
	fmt.Fprintf(w, "# TYPE scaleout_http_cache_bytes gauge\nscaleout_http_cache_bytes %d\n", s.Bytes)
}
