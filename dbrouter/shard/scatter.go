package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Order is one column of a Scatter merge's sort order.
type Order struct {
	// Column is the result column's index (from 0).
	Column int
	// Desc sorts it descending.
	Desc bool
}

// ScatterQuery is a read sent to many shards and merged.
type ScatterQuery struct {
	// SQL runs once per logical shard with {shard} expanded. To keep the
	// transfer bounded, give it the same ORDER BY and LIMIT as the merge.
	SQL  string
	Args []any
	// Shards are the logical shards to ask. If nil, all of them.
	Shards []int
	// OrderBy sorts the merged rows (NULLs first, then by value:
	// integers, floats, strings and byte strings, times, booleans). If
	// empty, rows come in shard order.
	OrderBy []Order
	// Limit keeps only the first Limit merged rows. If zero, all.
	Limit int
	// AllowPartial returns what the reachable shards gave, marked Partial,
	// when some shards fail; otherwise any failure fails the whole read
	// with an error wrapping ErrPartial.
	AllowPartial bool
}

// Result is a merged Scatter result.
type Result struct {
	// Columns are the column names, from the first shard that answered.
	Columns []string
	// Rows are the merged rows; byte slices are copied, so they stay valid.
	Rows [][]any
	// Partial is true when some shards failed and ScatterQuery.AllowPartial
	// let the read return without them: Rows are then incomplete, and
	// Failed says which shards are missing.
	Partial bool
	// Failed lists the shards that did not answer, with why.
	Failed []ShardError
}

// ShardError is one shard's failure in a Scatter.
type ShardError struct {
	Shard    int
	Physical string
	Err      error
}

func (e ShardError) Error() string {
	return fmt.Sprintf("shard %d on %s: %v", e.Shard, e.Physical, e.Err)
}

func (e ShardError) Unwrap() error { return e.Err }

// shardRows is one shard's answer.
type shardRows struct {
	cols []string
	rows [][]any
	err  error
}

// Scatter runs q on every shard it names, at most Config.MaxConcurrency at a
// time, each bounded by Config.ShardTimeout, and merges the rows. With
// enough concurrency it takes as long as the slowest shard plus the merge.
// All shards run under the same map epoch (the map current at the call).
func (r *Router) Scatter(ctx context.Context, q ScatterQuery) (*Result, error) {
	m := r.m.Load()
	shards := q.Shards
	if shards == nil {
		shards = make([]int, m.Shards())
		for i := range shards {
			shards[i] = i
		}
	}
	for _, s := range shards {
		if s < 0 || s >= m.Shards() {
			return nil, fmt.Errorf("%w: scatter to shard %d: have 0..%d", ErrBadConfig, s, m.Shards()-1)
		}
	}
	answers := make([]shardRows, len(shards))
	sem := make(chan struct{}, r.cfg.MaxConcurrency)
	var wg sync.WaitGroup
	for i, s := range shards {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			answers[i].err = ctx.Err()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			answers[i] = r.gatherOne(ctx, r.target(m, s), q)
		})
	}
	wg.Wait()
	r.stats.scatters.Add(1)
	res, err := merge(m, shards, answers, q)
	if res != nil {
		r.stats.failedShards.Add(uint64(len(res.Failed)))
		if res.Partial {
			r.stats.partial.Add(1)
		}
	} else {
		for _, a := range answers {
			if a.err != nil {
				r.stats.failedShards.Add(1)
			}
		}
	}
	return res, err
}

func (r *Router) gatherOne(ctx context.Context, t target, q ScatterQuery) shardRows {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ShardTimeout)
	defer cancel()
	rows, err := t.phys.query(ctx, expand(q.SQL, t.schema), q.Args...)
	if err != nil {
		return shardRows{err: err}
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return shardRows{err: err}
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return shardRows{err: err}
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = bytes.Clone(b)
			}
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		return shardRows{err: err}
	}
	return shardRows{cols: cols, rows: out}
}

func merge(m *Map, shards []int, answers []shardRows, q ScatterQuery) (*Result, error) {
	res := &Result{}
	var errs []error
	for i, a := range answers {
		if a.err != nil {
			se := ShardError{Shard: shards[i], Physical: m.Placement(shards[i]), Err: a.err}
			res.Failed = append(res.Failed, se)
			errs = append(errs, se)
			continue
		}
		if res.Columns == nil {
			res.Columns = a.cols
		}
		res.Rows = append(res.Rows, a.rows...)
	}
	if len(res.Failed) > 0 {
		if !q.AllowPartial || len(res.Failed) == len(shards) {
			return nil, fmt.Errorf("%w: %d of %d shards failed: %w", ErrPartial, len(res.Failed), len(shards), errors.Join(errs...))
		}
		res.Partial = true
	}
	for _, o := range q.OrderBy {
		if o.Column < 0 || (res.Columns != nil && o.Column >= len(res.Columns)) {
			return nil, fmt.Errorf("%w: order by column %d of %d", ErrBadConfig, o.Column, len(res.Columns))
		}
	}
	if len(q.OrderBy) > 0 {
		sort.SliceStable(res.Rows, func(i, j int) bool { return less(res.Rows[i], res.Rows[j], q.OrderBy) })
	}
	if q.Limit > 0 && len(res.Rows) > q.Limit {
		res.Rows = res.Rows[:q.Limit]
	}
	return res, nil
}

func less(a, b []any, order []Order) bool {
	for _, o := range order {
		c := compareValues(a[o.Column], b[o.Column])
		if c == 0 {
			continue
		}
		if o.Desc {
			return c > 0
		}
		return c < 0
	}
	return false
}

// compareValues orders the values database/sql drivers return.
func compareValues(a, b any) int {
	ra, rb := rank(a), rank(b)
	if ra != rb {
		return cmpInt(int64(ra), int64(rb))
	}
	switch x := a.(type) {
	case int64:
		return cmpInt(x, b.(int64))
	case float64:
		y := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case string:
		return cmpString(x, toString(b))
	case []byte:
		return cmpString(string(x), toString(b))
	case time.Time:
		return x.Compare(b.(time.Time))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	}
	return 0
}

// rank groups comparable kinds; integers and floats compare with their
// own kind only, which is what one column of one query returns.
func rank(v any) int {
	switch v.(type) {
	case nil:
		return 0
	case int64:
		return 1
	case float64:
		return 2
	case string, []byte:
		return 3
	case time.Time:
		return 4
	case bool:
		return 5
	}
	return 6
}

func toString(v any) string {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	s, _ := v.(string)
	return s
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
