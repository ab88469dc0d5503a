package dbrouter

import (
	"context"
	"database/sql"
)

// Querier is what a Dialect runs its statements on: *sql.DB, *sql.Conn and
// *sql.Tx all satisfy it.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Dialect is what the router needs to know of one database engine: where its
// write-ahead log stands, how far a replica has replayed it, how to keep a
// heartbeat row, and which errors mean a node is gone or read-only. Postgres
// and SQLite implement it, one file each; an engine without WAL positions
// returns zero Tokens, which makes read-your-writes a no-op.
// Implementations must be safe for concurrent use.
type Dialect interface {
	// WritePosition returns the primary's WAL position now; run after a
	// commit, it is that write's consistency token.
	WritePosition(ctx context.Context, q Querier) (Token, error)
	// ReplayPosition returns how far the node has replayed the WAL (for a
	// node not in recovery, its own WAL position).
	ReplayPosition(ctx context.Context, q Querier) (Token, error)
	// SetupHeartbeat creates the heartbeat row on the primary if needed.
	SetupHeartbeat(ctx context.Context, q Querier) error
	// WriteHeartbeat bumps the heartbeat row's sequence number on the
	// primary and returns it with the primary's WAL position.
	WriteHeartbeat(ctx context.Context, q Querier) (seq int64, pos Token, err error)
	// ReadHeartbeat returns the heartbeat sequence number a replica has
	// replayed, and its replay position.
	ReadHeartbeat(ctx context.Context, q Querier) (seq int64, pos Token, err error)
	// IsReadOnly reports whether err says the statement reached a node that
	// cannot write (a standby): the statement was refused, not applied.
	IsReadOnly(err error) bool
	// NeverSent reports whether err is guaranteed to have happened before
	// the statement reached any server, so retrying it cannot apply it twice.
	NeverSent(err error) bool
	// IsConnError reports whether err means the node is unreachable or
	// shutting down, rather than a fault of the statement.
	IsConnError(err error) bool
}
