package dbrouter

import (
	"context"
	"database/sql"
	"sync"
)

// Tx is a transaction begun by Router.BeginTx: a *sql.Tx (all of its methods
// are available) whose Commit records the write's consistency token and
// whose end releases the router's accounting. Like *sql.Tx it is for one
// goroutine at a time; end it with Commit or Rollback.
type Tx struct {
	*sql.Tx
	r    *Router
	ctx  context.Context
	conn *sql.Conn // primary transactions only
	rep  *Replica  // replica transactions only

	once     sync.Once
	readOnly bool // a standby refused a statement: drop the connection
}

// BeginTx starts a transaction. With opts.ReadOnly it runs on a replica
// chosen as for a read-only query (it sees the Session's writes) and counts
// as in flight there until it ends; otherwise it runs on the primary, where
// Commit records a token. Beginning on the primary is retried during a
// failover like a write (BEGIN applies nothing).
func (r *Router) BeginTx(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	if opts != nil && opts.ReadOnly && len(r.replicas) > 0 {
		return r.beginReplica(ctx, opts)
	}
	var tx *Tx
	err := r.retryWrite(ctx, func() error {
		c, err := r.primary.Conn(ctx)
		if err != nil {
			return err
		}
		stx, err := c.BeginTx(ctx, opts)
		if err != nil {
			if r.dialect.IsReadOnly(err) {
				r.discard(c)
			}
			c.Close()
			return err
		}
		tx = &Tx{Tx: stx, r: r, ctx: ctx, conn: c}
		return nil
	})
	r.st.writes.Add(1)
	return tx, err
}

func (r *Router) beginReplica(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var rep *Replica
		if rep, err = r.pick(ctx); err != nil {
			return nil, err
		}
		if rep == nil {
			r.st.primaryReads.Add(1)
			stx, err := r.primary.BeginTx(ctx, opts)
			if err != nil {
				return nil, err
			}
			return &Tx{Tx: stx, r: r, ctx: ctx}, nil
		}
		rep.inflight.Add(1)
		rep.queries.Add(1)
		var stx *sql.Tx
		if stx, err = rep.db.BeginTx(ctx, opts); err == nil {
			rep.markSuccess()
			r.st.replicaReads.Add(1)
			return &Tx{Tx: stx, r: r, ctx: ctx, rep: rep}, nil
		}
		rep.inflight.Add(-1)
		if !r.dialect.IsConnError(err) || ctx.Err() != nil {
			return nil, err
		}
		rep.markFailure(r.now(), r.cfg.EjectBackoff, r.cfg.MaxEjectBackoff)
	}
	return nil, err
}

// ExecContext is (*sql.Tx).ExecContext; it also notes a refusal by a node in
// recovery, so the connection is dropped when the transaction ends.
func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := t.Tx.ExecContext(ctx, query, args...)
	if err != nil && t.r.dialect.IsReadOnly(err) {
		t.readOnly = true
	}
	return res, err
}

// Commit commits the transaction; on the primary it then records the
// write's token in the context's Session and the global scope.
func (t *Tx) Commit() error {
	err := t.Tx.Commit()
	if err != nil && t.r.dialect.IsReadOnly(err) {
		t.readOnly = true
	}
	if err == nil && t.conn != nil && t.r.wantsToken(t.ctx) {
		t.r.record(t.ctx, t.conn)
	}
	t.end()
	return err
}

// Rollback aborts the transaction.
func (t *Tx) Rollback() error {
	err := t.Tx.Rollback()
	t.end()
	return err
}

// end releases the router's hold on the transaction once.
func (t *Tx) end() {
	t.once.Do(func() {
		if t.rep != nil {
			t.rep.inflight.Add(-1)
		}
		if t.conn != nil {
			if t.readOnly {
				t.r.discard(t.conn)
			}
			t.conn.Close()
		}
	})
}
