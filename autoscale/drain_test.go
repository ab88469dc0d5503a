package autoscale

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakePool is a Pool whose members' in-flight counts fall by one a second
// once draining.
type fakePool struct {
	mu       sync.Mutex
	inFlight map[string]int64
	draining map[string]time.Time
}

func (p *fakePool) SetDraining(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.inFlight[id]; !ok {
		return errors.New("unknown member")
	}
	p.draining[id] = time.Now()
	return nil
}

func (p *fakePool) InFlight(id string) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.inFlight[id]
	if since, draining := p.draining[id]; draining {
		n = max(0, n-int64(time.Since(since)/time.Second))
	}
	return n, ok
}

func TestPoolDrainer(t *testing.T) {
	for _, tt := range []struct {
		name     string
		id       string
		cfg      PoolDrainerConfig
		wantErr  error
		wantTook time.Duration
	}{
		{"waits for in-flight to finish", "busy", PoolDrainerConfig{}, nil, 3 * time.Second},
		{"idle member returns at once", "idle", PoolDrainerConfig{}, nil, 0},
		{"idle member stays MinDrain", "idle", PoolDrainerConfig{MinDrain: 2 * time.Second}, nil, 2 * time.Second},
		{"unknown member returns at once", "gone", PoolDrainerConfig{}, nil, 0},
		{"times out", "busy", PoolDrainerConfig{Timeout: 1500 * time.Millisecond}, ErrDrainTimeout, 1500 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &fakePool{inFlight: map[string]int64{"busy": 3, "idle": 0}, draining: map[string]time.Time{}}
				tt.cfg.Pool = p
				d, err := NewPoolDrainer(tt.cfg)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				err = d.Drain(t.Context(), tt.id)
				took := time.Since(start)
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Drain = %v, want %v", err, tt.wantErr)
				}
				// Polls every 100ms, so the drain ends within one poll of the goal.
				if took < tt.wantTook || took > tt.wantTook+100*time.Millisecond {
					t.Errorf("Drain took %v, want %v (+ one poll)", took, tt.wantTook)
				}
				if _, known := p.inFlight[tt.id]; known && p.draining[tt.id].IsZero() {
					t.Errorf("member %s was not marked draining", tt.id)
				}
			})
		})
	}
}

func TestPoolDrainerCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &fakePool{inFlight: map[string]int64{"busy": 100}, draining: map[string]time.Time{}}
		d, err := NewPoolDrainer(PoolDrainerConfig{Pool: p})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := d.Drain(ctx, "busy"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Drain = %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestNewPoolDrainerRejects(t *testing.T) {
	t.Parallel()
	for _, cfg := range []PoolDrainerConfig{{}, {Pool: &fakePool{}, Timeout: -1}} {
		if _, err := NewPoolDrainer(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("NewPoolDrainer(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
}
