package keys

import (
	"fmt"
	"strconv"
	"sync/atomic"
)

// Offsets is a per-node integer sequence for engines or schemas that need
// plain auto-incrementing integers: node k of n issues k, k+n, k+2n, ... (k
// from 1 to n), so n nodes never issue the same value. It is the scheme of
// MySQL's and MariaDB's auto_increment_increment and auto_increment_offset
// (which a Galera cluster sets on each node by itself when
// wsrep_auto_increment_control is on, the default) and of PostgreSQL's
// CREATE SEQUENCE ... INCREMENT BY n START WITH k. Values are unique, not
// ordered across nodes, and n cannot grow without a new scheme: leave room
// (n larger than today's node count) when choosing it.
type Offsets struct {
	// Increment is the number of nodes n (the step); at least 1.
	Increment int64
	// Offset is this node's first value k, 1..Increment.
	Offset int64
}

// NewOffsets validates the node's place in the scheme.
func NewOffsets(increment, offset int64) (Offsets, error) {
	if increment < 1 || offset < 1 || offset > increment {
		return Offsets{}, fmt.Errorf("%w: offset %d, increment %d: want 1 <= offset <= increment", ErrBadConfig, offset, increment)
	}
	return Offsets{Increment: increment, Offset: offset}, nil
}

// Nth returns the node's i-th value (i from 0): Offset + i*Increment.
func (o Offsets) Nth(i int64) int64 { return o.Offset + i*o.Increment }

// Owns reports whether v is one of this node's values.
func (o Offsets) Owns(v int64) bool {
	return v >= o.Offset && (v-o.Offset)%o.Increment == 0
}

// MariaDBSettings returns the server options that make a MariaDB or MySQL
// node issue this sequence for AUTO_INCREMENT columns.
func (o Offsets) MariaDBSettings() []string {
	return []string{
		"--auto-increment-increment=" + strconv.FormatInt(o.Increment, 10),
		"--auto-increment-offset=" + strconv.FormatInt(o.Offset, 10),
	}
}

// PostgresSequence returns the options of a PostgreSQL sequence that issues
// this node's values ("INCREMENT BY n START WITH k"), for
// CREATE SEQUENCE name <options>.
func (o Offsets) PostgresSequence() string {
	return fmt.Sprintf("INCREMENT BY %d START WITH %d", o.Increment, o.Offset)
}

// Counter issues one node's values in memory: a sequence for an embedded
// engine (SQLite) that has no increment setting. It is safe for concurrent
// use; restore it after a restart with the largest value already stored.
type Counter struct {
	o    Offsets
	next atomic.Int64 // index of the next value
}

// NewCounter returns a counter whose first value is the smallest of o's
// values greater than after (pass 0 on an empty table).
func NewCounter(o Offsets, after int64) *Counter {
	c := &Counter{o: o}
	if after >= o.Offset {
		c.next.Store((after-o.Offset)/o.Increment + 1)
	}
	return c
}

// Next returns the next value.
func (c *Counter) Next() int64 { return c.o.Nth(c.next.Add(1) - 1) }
