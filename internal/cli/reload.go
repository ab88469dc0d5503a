package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"scaleout/balancer"
)

// reloadOnHUP re-reads the config file on every SIGHUP and applies what can
// change without a restart: the policy and the configured members (added,
// removed or re-weighted; members that joined by heartbeat or the admin API
// stay). Listeners are never closed, so no request is dropped. A file that
// does not parse changes nothing.
func reloadOnHUP(ctx context.Context, path string, applyFlags func(*balanceConfig) error, b *balancer.Balancer, log *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
		}
		if err := reloadBalancer(path, applyFlags, b, log); err != nil {
			log.Error("reload refused; the running configuration stays", "err", err)
			continue
		}
		log.Info("configuration reloaded", "file", path)
	}
}

func reloadBalancer(path string, applyFlags func(*balanceConfig) error, b *balancer.Balancer, log *slog.Logger) error {
	cfg := defaultBalanceConfig()
	if err := loadYAML(path, &cfg); err != nil {
		return err
	}
	if err := applyFlags(&cfg); err != nil {
		return err
	}
	sel, err := balancer.NewSelector(policyConfig(cfg))
	if err != nil {
		return err
	}
	want := map[string]*balancer.Backend{}
	for _, x := range cfg.Backends {
		m, err := balancer.NewBackend(x.ID, x.URL, x.Weight)
		if err != nil {
			return err
		}
		if _, dup := want[m.ID]; dup {
			return fmt.Errorf("member %s listed twice", m.ID)
		}
		want[m.ID] = m
	}
	b.SetSelector(sel)
	for _, cur := range b.Backends() {
		nm, keep := want[cur.ID]
		switch {
		case !keep && !cur.Dynamic():
			b.Remove(cur.ID)
		case keep && (nm.URL.String() != cur.URL.String() || nm.Weight != cur.Weight):
			b.Upsert(cur.ID, nm.URL.String(), nm.Weight, 0, 0)
			delete(want, cur.ID)
		default:
			delete(want, cur.ID)
		}
	}
	for _, m := range want {
		if err := b.Add(m); err != nil {
			log.Warn("reload: member not added", "id", m.ID, "err", err)
		}
	}
	return nil
}
