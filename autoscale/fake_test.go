package autoscale

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// world is a fake pool for Scaler tests: it is the Source, the Provider and
// the Drainer at once, and records what was done to it, in order. It runs
// inside a synctest bubble, so its waits use the bubble's clock.
type world struct {
	mu       sync.Mutex
	load     int64 // requests in flight across ready members
	next     int
	insts    map[string]*fakeInst
	actions  []action
	failNext int           // starts that fail before one succeeds
	drainFor time.Duration // how long a drain takes
	obsErr   error         // Observe fails with it
	starts   int
}

type fakeInst struct {
	id       string
	exited   chan struct{}
	draining bool
	hidden   bool  // out of the pool, as a hung process whose lease ran out
	inFlight int64 // set by a test to make it look busy
}

type action struct {
	at   time.Time
	verb string // start, drain, drained, stop
	id   string
}

func newWorld() *world { return &world{insts: map[string]*fakeInst{}} }

func (w *world) record(verb, id string) {
	w.actions = append(w.actions, action{time.Now(), verb, id})
}

func (w *world) setLoad(n int64) {
	w.mu.Lock()
	w.load = n
	w.mu.Unlock()
}

func (w *world) Observe(ctx context.Context) (Observation, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var obs Observation
	if w.obsErr != nil {
		return obs, w.obsErr
	}
	ready := 0
	for _, in := range w.insts {
		if !in.draining && !in.hidden {
			ready++
		}
	}
	for _, id := range slices.Sorted(maps.Keys(w.insts)) {
		in := w.insts[id]
		if in.hidden {
			continue
		}
		m := Member{ID: id, Ready: !in.draining, InFlight: in.inFlight}
		if m.Ready && in.inFlight == 0 {
			m.InFlight = w.load / int64(ready)
		}
		obs.Members = append(obs.Members, m)
	}
	return obs, nil
}

func (w *world) Start(ctx context.Context) (Instance, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.starts++
	if w.failNext > 0 {
		w.failNext--
		return Instance{}, errors.New("fake start failure")
	}
	w.next++
	in := &fakeInst{id: fmt.Sprintf("i%d", w.next), exited: make(chan struct{})}
	w.insts[in.id] = in
	w.record("start", in.id)
	return Instance{ID: in.id, URL: "http://127.0.0.1:1/" + in.id, Exited: in.exited}, nil
}

func (w *world) Stop(ctx context.Context, id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	in, ok := w.insts[id]
	if !ok {
		return nil
	}
	delete(w.insts, id)
	close(in.exited)
	w.record("stop", id)
	return nil
}

func (w *world) Drain(ctx context.Context, id string) error {
	w.mu.Lock()
	if in, ok := w.insts[id]; ok {
		in.draining = true
	}
	w.record("drain", id)
	d := w.drainFor
	w.mu.Unlock()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return ctx.Err()
	}
	w.mu.Lock()
	w.record("drained", id)
	w.mu.Unlock()
	return nil
}

// crash makes id exit on its own.
func (w *world) crash(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	in := w.insts[id]
	delete(w.insts, id)
	close(in.exited)
	w.record("crash", id)
}

func (w *world) live() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Sorted(maps.Keys(w.insts))
}

func (w *world) count(verb string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.actions {
		if a.verb == verb {
			n++
		}
	}
	return n
}

func (w *world) history() []action {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.actions)
}

// startScaler runs a Scaler over w with cfg's zero fields filled in, and
// returns it with a function that stops Run and checks it returned nil.
func startScaler(t *testing.T, w *world, cfg Config) (*Scaler, func()) {
	t.Helper()
	cfg.Source, cfg.Provider = w, w
	if cfg.Drainer == nil {
		cfg.Drainer = w
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return s, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}
}
