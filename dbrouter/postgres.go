package dbrouter

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Postgres is the Dialect for PostgreSQL streaming replication, driven
// through pgx's database/sql driver. Positions come from
// pg_current_wal_insert_lsn() on the primary (see WritePosition for why not
// pg_current_wal_lsn()) and pg_last_wal_replay_lsn() on a standby. The zero
// value is ready to use and safe for concurrent use.
type Postgres struct {
	// HeartbeatTable is the table holding the heartbeat row. If empty,
	// "dbrouter_heartbeat" is used. It must be a plain identifier, optionally
	// schema-qualified (NewPostgres checks it).
	HeartbeatTable string
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

// NewPostgres returns the Postgres dialect after checking its table name.
func NewPostgres(heartbeatTable string) (Postgres, error) {
	if heartbeatTable != "" && !identRE.MatchString(heartbeatTable) {
		return Postgres{}, fmt.Errorf("dbrouter: heartbeat table %q: %w", heartbeatTable, ErrBadConfig)
	}
	return Postgres{HeartbeatTable: heartbeatTable}, nil
}

func (p Postgres) table() string {
	if p.HeartbeatTable == "" || !identRE.MatchString(p.HeartbeatTable) {
		return "dbrouter_heartbeat"
	}
	return p.HeartbeatTable
}

func scanLSN(ctx context.Context, q Querier, query string) (Token, error) {
	var s *string
	if err := q.QueryRowContext(ctx, query).Scan(&s); err != nil {
		return Token{}, err
	}
	if s == nil {
		return Token{}, nil
	}
	l, err := ParseLSN(*s)
	if err != nil {
		return Token{}, err
	}
	return Token{LSN: l}, nil
}

// WritePosition implements Dialect. It reads pg_current_wal_insert_lsn()
// rather than pg_current_wal_lsn(): under synchronous_commit=off a commit
// may be acknowledged before its record is written, so the write position
// can lie before the commit, and a token taken from it would let a replica
// that has not replayed the commit serve the read. The insert position is
// always past the commit; at worst (a record ending exactly on a page
// boundary) it is a page header ahead, which costs one bounded wait.
func (Postgres) WritePosition(ctx context.Context, q Querier) (Token, error) {
	return scanLSN(ctx, q, "SELECT pg_current_wal_insert_lsn()::text")
}

// replayPositionSQL answers on a standby and also on a promoted node, so a
// replica that became the primary still reports a position.
const replayPositionSQL = `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text`

// ReplayPosition implements Dialect.
func (Postgres) ReplayPosition(ctx context.Context, q Querier) (Token, error) {
	return scanLSN(ctx, q, replayPositionSQL)
}

// SetupHeartbeat implements Dialect.
func (p Postgres) SetupHeartbeat(ctx context.Context, q Querier) error {
	t := p.table()
	_, err := q.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+t+
		" (id int PRIMARY KEY, seq bigint NOT NULL, ts timestamptz NOT NULL)")
	if err != nil {
		return fmt.Errorf("create %s: %w", t, err)
	}
	_, err = q.ExecContext(ctx, "INSERT INTO "+t+" VALUES (1, 0, now()) ON CONFLICT (id) DO NOTHING")
	if err != nil {
		return fmt.Errorf("insert into %s: %w", t, err)
	}
	return nil
}

// WriteHeartbeat implements Dialect. Several routers may share the row: each
// bump is a new sequence number, and each router remembers when it wrote its
// own.
func (p Postgres) WriteHeartbeat(ctx context.Context, q Querier) (int64, Token, error) {
	var seq int64
	var pos string
	err := q.QueryRowContext(ctx, "UPDATE "+p.table()+
		" SET seq = seq + 1, ts = now() WHERE id = 1 RETURNING seq, pg_current_wal_lsn()::text").Scan(&seq, &pos)
	if err != nil {
		return 0, Token{}, err
	}
	l, err := ParseLSN(pos)
	return seq, Token{LSN: l}, err
}

// ReadHeartbeat implements Dialect.
func (p Postgres) ReadHeartbeat(ctx context.Context, q Querier) (int64, Token, error) {
	var seq int64
	var pos *string
	err := q.QueryRowContext(ctx, "SELECT coalesce((SELECT seq FROM "+p.table()+" WHERE id = 1), 0), "+
		strings.TrimPrefix(replayPositionSQL, "SELECT ")).Scan(&seq, &pos)
	if err != nil || pos == nil {
		return seq, Token{}, err
	}
	l, err := ParseLSN(*pos)
	return seq, Token{LSN: l}, err
}

// IsReadOnly implements Dialect: SQLSTATE 25006 (read_only_sql_transaction)
// is what a standby answers to a write.
func (Postgres) IsReadOnly(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "25006"
}

// NeverSent implements Dialect: a failed connection attempt (including
// "no server accepts writes" under target_session_attrs=read-write) or an
// error pgconn marks safe to retry.
func (Postgres) NeverSent(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err)
}

// IsConnError implements Dialect: anything that is not an error reported by
// the server about the statement or a cancellation, plus the server's own "shutting down",
// "cannot connect now" (SQLSTATE class 57P) and connection exceptions
// (class 08).
func (Postgres) IsConnError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "57P") || strings.HasPrefix(pe.Code, "08")
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	// What is left comes from the client side of a connection: a dial or
	// socket error, an unexpected EOF, a closed pool. Errors of our own
	// parsing and "no rows" are not about the node.
	return !errors.Is(err, sql.ErrNoRows) && !errors.Is(err, ErrBadLSN)
}
