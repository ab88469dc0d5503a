package autoscale

import (
	"context"
	"fmt"
	"time"
)

// Pool is what PoolDrainer needs from a balancer. A balancer's owner adapts
// to it in a few lines (for scaleout's balancer: SetState(id,
// balancer.Draining), and the member's in-flight count from Backend(id)).
type Pool interface {
	// SetDraining stops new work for member id; requests in flight, and
	// sticky sessions for as long as the pool honours them, still reach it.
	SetDraining(id string) error
	// InFlight returns the requests the pool has in flight to member id,
	// and false if it does not know id.
	InFlight(id string) (n int64, ok bool)
}

// PoolDrainerConfig configures a PoolDrainer. Pool is required.
type PoolDrainerConfig struct {
	// Pool is the balancer to drain members of.
	Pool Pool
	// Timeout bounds one drain; past it Drain returns ErrDrainTimeout and
	// the Scaler stops the instance anyway. If zero, 30s.
	Timeout time.Duration
	// MinDrain is the least time a member stays draining, even when idle,
	// so sticky sessions pinned to it can finish a short exchange. If zero,
	// the drain ends as soon as nothing is in flight.
	MinDrain time.Duration
	// Poll is how often the in-flight count is read. If zero, 100ms.
	Poll time.Duration
}

// PoolDrainer is a Drainer over a Pool: it marks a member draining and
// polls its in-flight count until zero. Safe for concurrent use.
type PoolDrainer struct {
	cfg PoolDrainerConfig
}

// NewPoolDrainer validates cfg and applies its defaults.
func NewPoolDrainer(cfg PoolDrainerConfig) (*PoolDrainer, error) {
	switch {
	case cfg.Pool == nil:
		return nil, fmt.Errorf("%w: pool drainer needs a Pool", ErrConfig)
	case cfg.Timeout < 0 || cfg.MinDrain < 0 || cfg.Poll < 0:
		return nil, fmt.Errorf("%w: pool drainer timeout, min drain and poll must not be negative", ErrConfig)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Poll == 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	return &PoolDrainer{cfg: cfg}, nil
}

// Drain marks member id draining and waits until it has nothing in flight
// and MinDrain has passed. A member the pool does not know (it never
// joined, or already left) is drained at once.
func (d *PoolDrainer) Drain(ctx context.Context, id string) error {
	if _, ok := d.cfg.Pool.InFlight(id); !ok {
		return nil
	}
	if err := d.cfg.Pool.SetDraining(id); err != nil {
		if _, ok := d.cfg.Pool.InFlight(id); !ok {
			return nil // it left meanwhile
		}
		return fmt.Errorf("drain %s: %w", id, err)
	}
	start := time.Now()
	deadline := time.NewTimer(d.cfg.Timeout)
	defer deadline.Stop()
	poll := time.NewTicker(d.cfg.Poll)
	defer poll.Stop()
	for {
		n, ok := d.cfg.Pool.InFlight(id)
		if !ok || n <= 0 && time.Since(start) >= d.cfg.MinDrain {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain %s: %d in flight: %w", id, n, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("drain %s: %d still in flight after %v: %w", id, n, d.cfg.Timeout, ErrDrainTimeout)
		case <-poll.C:
		}
	}
}
