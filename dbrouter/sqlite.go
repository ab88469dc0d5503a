package dbrouter

import (
	"context"
	"database/sql"
	"errors"
	"strings"
)

// SQLite is the Dialect of the embedded default: one SQLite database and no
// replication, so there are no WAL positions and every Token is zero
// (read-your-writes holds trivially on one database), and there is no
// heartbeat. The zero value is ready to use and safe for concurrent use.
type SQLite struct{}

// WritePosition implements Dialect; it returns the zero Token.
func (SQLite) WritePosition(context.Context, Querier) (Token, error) { return Token{}, nil }

// ReplayPosition implements Dialect; it returns the zero Token.
func (SQLite) ReplayPosition(context.Context, Querier) (Token, error) { return Token{}, nil }

// SetupHeartbeat implements Dialect; it does nothing.
func (SQLite) SetupHeartbeat(context.Context, Querier) error { return nil }

// WriteHeartbeat implements Dialect; it reports no lag.
func (SQLite) WriteHeartbeat(context.Context, Querier) (int64, Token, error) { return 0, Token{}, nil }

// ReadHeartbeat implements Dialect; it reports no lag.
func (SQLite) ReadHeartbeat(context.Context, Querier) (int64, Token, error) { return 0, Token{}, nil }

// IsReadOnly implements Dialect: SQLite says "attempt to write a readonly
// database" (SQLITE_READONLY) for a database opened read-only.
func (SQLite) IsReadOnly(err error) bool {
	return err != nil && strings.Contains(err.Error(), "readonly database")
}

// NeverSent implements Dialect: SQLite runs in-process, so only an error
// before the statement ran (a closed pool) is known to be unapplied.
func (SQLite) NeverSent(err error) bool { return errors.Is(err, sql.ErrConnDone) }

// IsConnError implements Dialect.
func (SQLite) IsConnError(err error) bool { return errors.Is(err, sql.ErrConnDone) }
