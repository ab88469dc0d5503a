// Package multiprimary writes to a multi-primary cluster, MariaDB Galera,
// where every node takes writes: the lecture's multi-primary replication,
// with its two traps handled. Keys that could collide on two nodes come from
// a generator that cannot collide (package keys). Simultaneous updates of
// one row need a rule, and the rule depends on the mode:
//
//   - AnyNode: each transaction goes to any node (round robin). Galera
//     certifies transactions optimistically at commit, in one total order
//     for the whole cluster; when two transactions on different nodes
//     changed the same row, the one ordered first commits and the other is
//     rolled back with a deadlock error (1213, "WSREP detected
//     deadlock/conflict"): first committer wins. Cluster.Tx then runs the
//     loser again, up to Config.Retries times, on fresh data, so an
//     increment is never lost; a transaction that still loses is reported
//     failed (ErrConflict), never half-applied.
//   - Homed: each key has a home node (jump hash of the key, or
//     Config.Home), and its transactions go there, so two writers of one key
//     meet in the same node's row locks and wait for each other instead of
//     failing certification (ordinary InnoDB deadlocks, error 1213 too,
//     are retried the same way); certification conflicts remain possible
//     only for transactions that touch keys homed on different nodes. If
//     the home node is down, the next node serves (the rule is then
//     AnyNode's).
//
// For blind writes, where the value a writer read does not matter, PutLWW
// gives last writer wins by timestamp instead: each write carries a stamp
// (a Snowflake ID: time-ordered and unique, so there are no ties), and a row
// keeps the value with the greatest stamp whatever the order in which the
// writes arrive.
package multiprimary

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"scaleout/dbrouter/shard"
)

// Errors returned by the package, matched with errors.Is.
var (
	// ErrBadConfig: New was given an invalid Config.
	ErrBadConfig = errors.New("multiprimary: invalid config")
	// ErrConflict: a transaction lost certification on every attempt; none
	// of its attempts was applied.
	ErrConflict = errors.New("multiprimary: transaction lost every certification conflict")
)

// errBegin marks a transaction that failed to begin: nothing was sent, so
// another node may run it.
var errBegin = errors.New("begin transaction")

// Mode says where a transaction runs.
type Mode int

const (
	// AnyNode sends each transaction to the next node, round robin.
	AnyNode Mode = iota
	// Homed sends each key's transactions to its home node.
	Homed
)

// Config configures a Cluster.
type Config struct {
	// Nodes are the cluster's nodes, one pool each; at least one. The
	// caller owns them.
	Nodes []*sql.DB
	// Mode picks nodes. If zero, AnyNode.
	Mode Mode
	// Home maps a key to its home node index in Homed mode. If nil, jump
	// hash of the key over the nodes is used.
	Home func(key int64) int
	// Retries is how many times a transaction that lost certification is
	// run again. If zero, 5 is used; negative means none.
	Retries int
	// Backoff is the base of the jittered, doubling pause before a retry.
	// If zero, 2ms is used.
	Backoff time.Duration
	// Logger receives retries and failovers. If nil, nothing is logged.
	Logger *slog.Logger
}

// Cluster runs transactions on a multi-primary cluster. Create it with New;
// it is safe for concurrent use.
type Cluster struct {
	cfg   Config
	home  shard.Jump // default home of a key in Homed mode
	log   *slog.Logger
	next  atomic.Uint64
	stats struct{ commits, conflicts, retries, failed atomic.Uint64 }
}

// New validates cfg and returns a Cluster. It runs no query.
func New(cfg Config) (*Cluster, error) {
	if len(cfg.Nodes) == 0 {
		return nil, fmt.Errorf("%w: no nodes", ErrBadConfig)
	}
	for i, n := range cfg.Nodes {
		if n == nil {
			return nil, fmt.Errorf("%w: node %d is nil", ErrBadConfig, i)
		}
	}
	if cfg.Mode != AnyNode && cfg.Mode != Homed {
		return nil, fmt.Errorf("%w: unknown mode %d", ErrBadConfig, cfg.Mode)
	}
	if cfg.Retries == 0 {
		cfg.Retries = 5
	} else if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 2 * time.Millisecond
	}
	home, err := shard.NewJump(len(cfg.Nodes))
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, home: home, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Stats is a snapshot of a Cluster's counters.
type Stats struct {
	Commits   uint64 // transactions committed
	Conflicts uint64 // attempts rolled back by a certification conflict
	Retries   uint64 // attempts run again (after a conflict, or on another node when one was not ready)
	Failed    uint64 // transactions reported failed
}

// Stats returns the counters.
func (c *Cluster) Stats() Stats {
	return Stats{c.stats.commits.Load(), c.stats.conflicts.Load(), c.stats.retries.Load(), c.stats.failed.Load()}
}

// Node returns the node index a transaction on key would start on now.
func (c *Cluster) Node(key int64) int {
	if c.cfg.Mode == Homed {
		if c.cfg.Home != nil {
			h := c.cfg.Home(key)
			if h >= 0 && h < len(c.cfg.Nodes) {
				return h
			}
		}
		return c.home.Shard(shard.IntKey(key))
	}
	return int(c.next.Add(1) % uint64(len(c.cfg.Nodes)))
}

// Tx runs fn in a transaction for key (the key picks the node in Homed mode;
// AnyNode ignores it) and commits it. If the commit, or any statement, fails
// with a certification conflict, the transaction was rolled back entirely,
// and fn runs again (so it must not keep state between runs) up to
// Config.Retries times; when every attempt loses, the error wraps
// ErrConflict. A node that is down (the transaction cannot begin) or not
// ready (outside the primary component, error 1047) is skipped for the next
// one, within the same attempt budget. fn's own errors roll back and return at once.
// Every call ends either committed exactly once (nil) or not applied at all
// (an error), except when the connection breaks during COMMIT itself, where
// the outcome is unknown and the driver's error is returned unretried.
func (c *Cluster) Tx(ctx context.Context, key int64, fn func(*sql.Tx) error) error {
	node := c.Node(key)
	var err error
	for attempt := 0; attempt <= c.cfg.Retries; attempt++ {
		if attempt > 0 {
			c.stats.retries.Add(1)
			if werr := c.pause(ctx, attempt); werr != nil {
				return errors.Join(err, werr)
			}
		}
		err = c.once(ctx, c.cfg.Nodes[node], fn)
		switch {
		case err == nil:
			c.stats.commits.Add(1)
			return nil
		case IsConflict(err):
			c.stats.conflicts.Add(1)
			c.log.Debug("certification conflict, retrying", "node", node, "attempt", attempt+1, "err", err)
		case (notReady(err) || errors.Is(err, errBegin)) && ctx.Err() == nil && len(c.cfg.Nodes) > 1:
			// Nothing was applied: the node refused the transaction or
			// could not even begin it (down, unreachable).
			c.log.Warn("node unavailable, trying the next", "node", node, "err", err)
			node = (node + 1) % len(c.cfg.Nodes)
		default:
			c.stats.failed.Add(1)
			return err
		}
	}
	c.stats.failed.Add(1)
	if IsConflict(err) {
		return fmt.Errorf("%w after %d attempts: %w", ErrConflict, c.cfg.Retries+1, err)
	}
	return err
}

func (c *Cluster) once(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", errBegin, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (c *Cluster) pause(ctx context.Context, attempt int) error {
	d := c.cfg.Backoff << min(attempt-1, 6)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// IsConflict reports whether err is a Galera certification failure (or an
// InnoDB deadlock, which ends the same way): MariaDB error 1213,
// "Deadlock found when trying to get lock" / "WSREP detected
// deadlock/conflict and aborted the transaction". The transaction was
// rolled back and may be run again.
func IsConflict(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213
	}
	return err != nil && strings.Contains(err.Error(), "WSREP detected deadlock/conflict")
}

// notReady reports MariaDB error 1047 (ER_UNKNOWN_COM_ERROR, which Galera
// returns as "WSREP has not yet prepared node for application use" on a
// node outside the primary component): nothing was applied.
func notReady(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1047
}

// LWW names a table written last-writer-wins: a key column, a value column
// and a stamp column (BIGINT), which must be plain identifiers.
type LWW struct {
	Table, Key, Value, Stamp string
}

var ident = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// PutLWW writes value under key with stamp, last writer wins: the row keeps
// the value of the greatest stamp seen, whichever node each write went to
// and in whatever order Galera applied them (a blind upsert, so it cannot
// lose certification to anything but a write of the same key, and is then
// retried like any transaction). Use unique stamps (Snowflake IDs) so two
// writes never tie.
func (c *Cluster) PutLWW(ctx context.Context, l LWW, key int64, value any, stamp int64) error {
	for _, id := range []string{l.Table, l.Key, l.Value, l.Stamp} {
		if !ident.MatchString(id) {
			return fmt.Errorf("%w: LWW identifier %q: want letters, digits and '_'", ErrBadConfig, id)
		}
	}
	// The value is assigned before the stamp, so IF() compares against
	// the old stamp (MariaDB evaluates assignments left to right).
	q := fmt.Sprintf("INSERT INTO %[1]s (%[2]s, %[3]s, %[4]s) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE "+
		"%[3]s = IF(VALUES(%[4]s) > %[4]s, VALUES(%[3]s), %[3]s), %[4]s = GREATEST(%[4]s, VALUES(%[4]s))",
		l.Table, l.Key, l.Value, l.Stamp)
	return c.Tx(ctx, key, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, q, key, value, stamp)
		return err
	})
}
