// Package sqlitestore is a session.Store in a SQLite database file: the
// embedded default, shared safely by several app processes on one machine
// (WAL journal, a busy timeout, and compare-and-set writes that SQLite's
// locking makes atomic across processes). It uses modernc.org/sqlite, a pure
// Go SQLite, so no C toolchain is needed.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"scaleout/session"
)

// Config configures a Store.
type Config struct {
	// DB is the database, opened with Open or with the "sqlite" driver by
	// the caller, who owns and closes it. Required.
	DB *sql.DB
	// Table is the sessions table's name; the generations table is named
	// after it with "_gen" appended. If empty, "scaleout_sessions" is used.
	Table string
	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
}

// Store is a session.Store, session.Cleaner and session.Generations on
// SQLite. It is safe for concurrent use, from several processes too.
type Store struct {
	db  *sql.DB
	now func() time.Time
	q   queries
}

type queries struct {
	load, create, update, del, expire, gen, bump string
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,50}$`)

// Open opens (creating if needed) the SQLite file at path with the settings
// a shared session store needs: WAL journal, a 10 s busy timeout, and
// immediate write transactions.
func Open(path string) (*sql.DB, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	return db, nil
}

// New returns a Store on cfg.DB, creating its tables if they do not exist.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("sqlitestore: config: DB is nil")
	}
	if cfg.Table == "" {
		cfg.Table = "scaleout_sessions"
	}
	if !identRE.MatchString(cfg.Table) {
		return nil, fmt.Errorf("sqlitestore: config: Table %q is not a plain SQL identifier", cfg.Table)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t, g := cfg.Table, cfg.Table+"_gen"
	schema := []string{
		`CREATE TABLE IF NOT EXISTS ` + t + ` (id TEXT PRIMARY KEY, data BLOB NOT NULL, expiry INTEGER NOT NULL, version INTEGER NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + t + `_expiry ON ` + t + ` (expiry)`,
		`CREATE TABLE IF NOT EXISTS ` + g + ` (user_id TEXT PRIMARY KEY, gen INTEGER NOT NULL)`,
	}
	for _, s := range schema {
		if _, err := cfg.DB.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("sqlitestore: create schema: %w", err)
		}
	}
	return &Store{db: cfg.DB, now: cfg.Now, q: queries{
		load: `SELECT data, expiry, version FROM ` + t + ` WHERE id = ? AND expiry > ?`,
		// Creating over an expired entry is allowed: it counts as absent.
		create: `INSERT INTO ` + t + ` (id, data, expiry, version) VALUES (?, ?, ?, 1)
			ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry = excluded.expiry, version = 1
			WHERE ` + t + `.expiry <= ?`,
		update: `UPDATE ` + t + ` SET data = ?, expiry = ?, version = version + 1 WHERE id = ? AND version = ? AND expiry > ?`,
		del:    `DELETE FROM ` + t + ` WHERE id = ?`,
		expire: `DELETE FROM ` + t + ` WHERE expiry <= ?`,
		gen:    `SELECT gen FROM ` + g + ` WHERE user_id = ?`,
		bump:   `INSERT INTO ` + g + ` (user_id, gen) VALUES (?, 1) ON CONFLICT (user_id) DO UPDATE SET gen = gen + 1 RETURNING gen`,
	}}, nil
}

// Load returns the live entry under id.
func (s *Store) Load(ctx context.Context, id string) (session.Entry, bool, error) {
	var e session.Entry
	var exp int64
	err := s.db.QueryRowContext(ctx, s.q.load, id, s.now().UnixMilli()).Scan(&e.Data, &exp, &e.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return session.Entry{}, false, nil
	}
	if err != nil {
		return session.Entry{}, false, fmt.Errorf("sqlitestore: load: %w", err)
	}
	e.Expiry = time.UnixMilli(exp)
	return e, true, nil
}

// Save stores data under id if the live version is prev.
func (s *Store) Save(ctx context.Context, id string, data []byte, expiry time.Time, prev int64) error {
	now := s.now().UnixMilli()
	var res sql.Result
	var err error
	if prev == 0 {
		res, err = s.db.ExecContext(ctx, s.q.create, id, data, expiry.UnixMilli(), now)
	} else {
		res, err = s.db.ExecContext(ctx, s.q.update, data, expiry.UnixMilli(), id, prev, now)
	}
	if err != nil {
		return fmt.Errorf("sqlitestore: save: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return session.ErrConflict
	}
	return nil
}

// Delete removes id.
func (s *Store) Delete(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, s.q.del, id); err != nil {
		return fmt.Errorf("sqlitestore: delete: %w", err)
	}
	return nil
}

// DeleteExpired removes expired entries; run it with session.RunCleanup.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q.expire, s.now().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: delete expired: %w", err)
	}
	return res.RowsAffected()
}

// Generation returns userID's revocation generation.
func (s *Store) Generation(ctx context.Context, userID string) (int64, error) {
	var g int64
	err := s.db.QueryRowContext(ctx, s.q.gen, userID).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: generation: %w", err)
	}
	return g, nil
}

// Bump increments userID's revocation generation.
func (s *Store) Bump(ctx context.Context, userID string) (int64, error) {
	var g int64
	if err := s.db.QueryRowContext(ctx, s.q.bump, userID).Scan(&g); err != nil {
		return 0, fmt.Errorf("sqlitestore: bump generation: %w", err)
	}
	return g, nil
}
