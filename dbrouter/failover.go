package dbrouter

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"
)

// onPrimary runs fn on one connection of the primary pool, retried as
// retryWrite describes.
func (r *Router) onPrimary(ctx context.Context, fn func(*sql.Conn) error) error {
	return r.retryWrite(ctx, func() error {
		c, err := r.primary.Conn(ctx)
		if err != nil {
			return err
		}
		err = fn(c)
		if err != nil && r.dialect.IsReadOnly(err) {
			r.discard(c)
		}
		c.Close()
		return err
	})
}

// retryWrite runs attempt until it succeeds or fails in a way that does not
// prove the write unapplied. A write is provably unapplied when a node in
// recovery refused it (SQLSTATE 25006) or it never left the client because
// no node accepted a connection; then it is retried on a fresh connection,
// with backoff from 20ms doubling to 500ms, until FailoverWait has passed
// since the first attempt. Fresh connections from a multi-host DSN with
// target_session_attrs=read-write land only on a node that accepts writes,
// so a promoted replica is found without the router knowing its address.
func (r *Router) retryWrite(ctx context.Context, attempt func() error) error {
	start := r.now()
	sleep := 20 * time.Millisecond
	for {
		err := attempt()
		if err == nil || !(r.dialect.IsReadOnly(err) || r.dialect.NeverSent(err)) || ctx.Err() != nil {
			return err
		}
		if r.cfg.FailoverWait < 0 || r.now().Sub(start)+sleep > r.cfg.FailoverWait {
			return fmt.Errorf("%w (waited %v): %w", ErrNoPrimary, r.now().Sub(start).Round(time.Millisecond), err)
		}
		r.st.failoverRetries.Add(1)
		r.log.Info("dbrouter: write not applied, retrying on a fresh primary connection", "err", err, "after", sleep)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		sleep = min(2*sleep, 500*time.Millisecond)
	}
}

// discard closes c instead of returning it to the pool, and drops the pool's
// idle connections, which may all lead to the same demoted node; the next
// ones are dialled afresh.
func (r *Router) discard(c *sql.Conn) {
	_ = c.Raw(func(any) error { return driver.ErrBadConn })
	r.primary.SetMaxIdleConns(0)
	r.primary.SetMaxIdleConns(r.cfg.PrimaryMaxIdle)
	r.log.Warn("dbrouter: primary connection reached a read-only node; dropped idle primary connections")
}
