// Package memstore is a session.Store in this process's memory: for tests
// and for a single app server. Sessions do not survive a restart and are not
// shared between processes; use sqlitestore, pgstore or redisstore for that.
package memstore

import (
	"context"
	"sync"
	"time"

	"scaleout/session"
)

// Config configures a Store.
type Config struct {
	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
}

// Store is an in-memory session.Store, session.Cleaner and
// session.Generations. It is safe for concurrent use.
type Store struct {
	now func() time.Time

	// mu guards entries and gens.
	mu      sync.Mutex
	entries map[string]session.Entry
	gens    map[string]int64
}

// New returns an empty Store.
func New(cfg Config) (*Store, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{now: cfg.Now, entries: map[string]session.Entry{}, gens: map[string]int64{}}, nil
}

// Load returns the live entry under id.
func (s *Store) Load(_ context.Context, id string) (session.Entry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.live(id)
	return e, ok, nil
}

// live returns id's entry if it has not expired (s.mu held).
func (s *Store) live(id string) (session.Entry, bool) {
	e, ok := s.entries[id]
	if !ok || !s.now().Before(e.Expiry) {
		return session.Entry{}, false
	}
	return e, true
}

// Save stores data under id if the live version is prev.
func (s *Store) Save(_ context.Context, id string, data []byte, expiry time.Time, prev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, _ := s.live(id)
	if e.Version != prev {
		return session.ErrConflict
	}
	s.entries[id] = session.Entry{Data: data, Expiry: expiry, Version: prev + 1}
	return nil
}

// Delete removes id.
func (s *Store) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, id)
	return nil
}

// DeleteExpired removes expired entries.
func (s *Store) DeleteExpired(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var n int64
	for id, e := range s.entries {
		if !now.Before(e.Expiry) {
			delete(s.entries, id)
			n++
		}
	}
	return n, nil
}

// Generation returns userID's revocation generation.
func (s *Store) Generation(_ context.Context, userID string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gens[userID], nil
}

// Bump increments userID's revocation generation.
func (s *Store) Bump(_ context.Context, userID string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gens[userID]++
	return s.gens[userID], nil
}
