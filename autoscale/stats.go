package autoscale

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// Stats is a snapshot of a Scaler for the dashboard and metrics. Its JSON
// form is what the dashboard reads (current, desired, recent).
type Stats struct {
	Metric Metric  `json:"metric"`
	Target float64 `json:"target"`
	Min    int     `json:"min"`
	Max    int     `json:"max"`
	// Observed is the metric's value at the last decision.
	Observed float64 `json:"observed"`
	// Current is instances running or starting; Starting and Draining
	// count those on their way in and out.
	Current  int `json:"current"`
	Starting int `json:"starting"`
	Draining int `json:"draining"`
	// Desired is the size the Scaler is converging to.
	Desired int `json:"desired"`
	// Last is the last decision, taken at LastAt (zero before the first).
	Last   Decision  `json:"last"`
	LastAt time.Time `json:"last_at"`
	// Counts counts decisions and events by code.
	Counts map[Code]uint64 `json:"counts"`
	// Recent holds the latest size changes, oldest first.
	Recent []Event `json:"recent"`
	// Instances lists the instances running or draining, by id.
	Instances []InstanceStats `json:"instances"`
}

// Event is one change of the pool's size, or a replacement.
type Event struct {
	Time   time.Time `json:"time"`
	From   int       `json:"from"`
	To     int       `json:"to"`
	Code   Code      `json:"code"`
	Reason string    `json:"reason"`
}

// InstanceStats describes one instance the Scaler started.
type InstanceStats struct {
	ID       string    `json:"id"`
	URL      string    `json:"url"`
	Started  time.Time `json:"started"`
	Draining bool      `json:"draining"`
}

// Stats returns a snapshot; the caller owns it. Safe for concurrent use.
func (s *Scaler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Counts = maps.Clone(s.stats.Counts)
	st.Recent = slices.Clone(s.stats.Recent)
	st.Instances = slices.Clone(s.stats.Instances)
	return st
}

func (r *run) count(c Code) {
	r.s.mu.Lock()
	r.s.stats.Counts[c]++
	r.s.mu.Unlock()
}

func (r *run) addEvent(e Event) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	st := &r.s.stats
	if len(st.Recent) >= r.cfg.Events {
		st.Recent = slices.Delete(st.Recent, 0, len(st.Recent)-r.cfg.Events+1)
	}
	st.Recent = append(st.Recent, e)
}

// publish copies the loop's state into the snapshot, and d if not nil.
func (r *run) publish(d *Decision) {
	insts := make([]InstanceStats, 0, len(r.running)+len(r.draining))
	for _, in := range r.running {
		insts = append(insts, InstanceStats{ID: in.ID, URL: in.URL, Started: in.started})
	}
	for _, in := range r.draining {
		insts = append(insts, InstanceStats{ID: in.ID, URL: in.URL, Started: in.started, Draining: true})
	}
	slices.SortFunc(insts, func(a, b InstanceStats) int { return strings.Compare(a.ID, b.ID) })
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	st := &r.s.stats
	st.Current, st.Starting, st.Draining, st.Desired = r.current(), r.pending, len(r.draining), r.desired
	st.Observed, st.Instances = r.observed, insts
	if d != nil {
		st.Last, st.LastAt = *d, time.Now()
	}
}
