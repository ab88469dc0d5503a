package shard

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Map is a versioned shard map: a shard function over logical shards, the
// physical database that holds each logical shard, and an epoch that grows
// by one with every change (a move). A Map is immutable once made and safe
// for concurrent use; a change makes a new Map (Moved).
type Map struct {
	epoch     uint64
	fn        Func
	placement []string // logical shard -> physical name
	schemas   []string // logical shard -> schema name, precomputed
}

// NewMap returns a map at epoch (>= 1) placing logical shard i on the
// physical database placement[i]; len(placement) must equal fn.Shards().
// Physical names are plain identifiers (letters, digits, '_', '-').
func NewMap(epoch uint64, fn Func, placement []string) (*Map, error) {
	if epoch < 1 {
		return nil, fmt.Errorf("%w: map epoch 0: epochs start at 1", ErrBadConfig)
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: map without a shard function", ErrBadConfig)
	}
	if len(placement) != fn.Shards() {
		return nil, fmt.Errorf("%w: %d placements for %d logical shards", ErrBadConfig, len(placement), fn.Shards())
	}
	m := &Map{epoch: epoch, fn: fn, placement: append([]string(nil), placement...), schemas: make([]string, len(placement))}
	for i, p := range placement {
		if !physName.MatchString(p) {
			return nil, fmt.Errorf("%w: logical shard %d placed on %q: want a name of letters, digits, '_' or '-'", ErrBadConfig, i, p)
		}
		m.schemas[i] = SchemaName(i)
	}
	return m, nil
}

var physName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// SchemaName is the PostgreSQL schema of logical shard i: "shard_0007".
func SchemaName(i int) string { return fmt.Sprintf("shard_%04d", i) }

// Epoch returns the map's version.
func (m *Map) Epoch() uint64 { return m.epoch }

// Func returns the shard function.
func (m *Map) Func() Func { return m.fn }

// Shards returns the number of logical shards.
func (m *Map) Shards() int { return len(m.placement) }

// Shard returns the logical shard of k.
func (m *Map) Shard(k Key) int { return m.fn.Shard(k) }

// Placement returns the physical database name of logical shard s.
func (m *Map) Placement(s int) string { return m.placement[s] }

// Physical returns the sorted-by-first-use names of the physical databases
// the map uses.
func (m *Map) Physical() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range m.placement {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// Moved returns a new map, one epoch later, with logical shard s placed on
// physical database to.
func (m *Map) Moved(s int, to string) (*Map, error) {
	if s < 0 || s >= len(m.placement) {
		return nil, fmt.Errorf("%w: no logical shard %d (have 0..%d)", ErrBadConfig, s, len(m.placement)-1)
	}
	p := append([]string(nil), m.placement...)
	p[s] = to
	return NewMap(m.epoch+1, m.fn, p)
}

// mapJSON is the file form of a Map, e.g.
//
//	{"epoch": 3, "func": {"kind": "jump", "shards": 8},
//	 "placement": ["pg1", "pg1", "pg2", ...]}
//
// Kinds: "jump" (shards), "ranges" (bounds), "directory" (entries, a list
// of {"key": k, "shard": s}, and fallback, another func).
type mapJSON struct {
	Epoch     uint64    `json:"epoch"`
	Func      *funcJSON `json:"func"`
	Placement []string  `json:"placement"`
}

type funcJSON struct {
	Kind     string     `json:"kind"`
	Shards   int        `json:"shards,omitempty"`
	Bounds   []Key      `json:"bounds,omitempty"`
	Entries  []dirEntry `json:"entries,omitempty"`
	Fallback *funcJSON  `json:"fallback,omitempty"`
}

type dirEntry struct {
	Key   Key `json:"key"`
	Shard int `json:"shard"`
}

// MarshalJSON encodes the map in its file form.
func (m *Map) MarshalJSON() ([]byte, error) {
	f, err := funcToJSON(m.fn)
	if err != nil {
		return nil, err
	}
	return json.Marshal(mapJSON{Epoch: m.epoch, Func: f, Placement: m.placement})
}

func funcToJSON(f Func) (*funcJSON, error) {
	switch f := f.(type) {
	case Jump:
		return &funcJSON{Kind: "jump", Shards: f.n}, nil
	case Ranges:
		return &funcJSON{Kind: "ranges", Bounds: f.bounds}, nil
	case Directory:
		fb, err := funcToJSON(f.fallback)
		if err != nil {
			return nil, err
		}
		d := &funcJSON{Kind: "directory", Fallback: fb}
		for k, s := range f.entries {
			d.Entries = append(d.Entries, dirEntry{k, s})
		}
		return d, nil
	}
	return nil, fmt.Errorf("%w: shard function %T has no file form", ErrBadConfig, f)
}

// ParseMap decodes a map from its file form (see MarshalJSON), checking
// everything NewMap checks; errors name the problem. It is safe on
// untrusted input.
func ParseMap(b []byte) (*Map, error) {
	var j mapJSON
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: shard map: %v", ErrBadConfig, err)
	}
	if j.Func == nil {
		return nil, fmt.Errorf("%w: shard map: no \"func\"", ErrBadConfig)
	}
	fn, err := funcFromJSON(j.Func, 0)
	if err != nil {
		return nil, err
	}
	return NewMap(j.Epoch, fn, j.Placement)
}

func funcFromJSON(f *funcJSON, depth int) (Func, error) {
	if depth > 4 {
		return nil, fmt.Errorf("%w: shard map: directories nested too deep", ErrBadConfig)
	}
	switch f.Kind {
	case "jump":
		return NewJump(f.Shards)
	case "ranges":
		return NewRanges(f.Bounds)
	case "directory":
		if f.Fallback == nil {
			return nil, fmt.Errorf("%w: shard map: directory without \"fallback\"", ErrBadConfig)
		}
		fb, err := funcFromJSON(f.Fallback, depth+1)
		if err != nil {
			return nil, err
		}
		e := make(map[Key]int, len(f.Entries))
		for _, d := range f.Entries {
			e[d.Key] = d.Shard
		}
		return NewDirectory(e, fb)
	}
	return nil, fmt.Errorf("%w: shard map: unknown func kind %q (want jump, ranges or directory)", ErrBadConfig, f.Kind)
}
