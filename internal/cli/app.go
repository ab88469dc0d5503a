package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"golang.org/x/sync/errgroup"

	"scaleout/dbrouter"
	"scaleout/dbrouter/shard"
	"scaleout/health"
	"scaleout/internal/app"
	"scaleout/session"
	"scaleout/session/cookiestore"
	"scaleout/session/sqlitestore"
)

const appSynopsis = `app [flags]

Runs the example app server, the lecture's airline: flights, a flight's
passengers, booking (a form and a POST) and a login. Sessions are shared by
every app server through an SQLite file or a signed cookie; the database is an
SQLite file every app process on the machine shares.`

// appConfig are the settings of one app server.
type appConfig struct {
	Listen        string
	Advertise     string
	ID            string
	DataDir       string
	Sessions      string // "sqlite" or "cookie"
	SecretFile    string
	Work          time.Duration
	DBURL         string
	CacheAddr     string
	DBReplicas    stringList
	LogLevel      string
	heartbeatArgs heartbeatArgs
}

func runApp(ctx context.Context, env *Env, args []string) error {
	fl := newFlagSet(env, "app", appSynopsis)
	var c appConfig
	fl.StringVar(&c.Listen, "listen", "127.0.0.1:8081", "`address` to serve on")
	fl.StringVar(&c.ID, "id", "", "this server's `id` on pages and in heartbeats (default: the advertised host:port)")
	fl.StringVar(&c.Advertise, "advertise", "", "`URL` balancers reach this server at (default: http:// and the listen address, 127.0.0.1 for a wildcard)")
	fl.StringVar(&c.DataDir, "data", "scaleout-data", "`directory` of the shared SQLite files (airline.db, sessions.db)")
	fl.StringVar(&c.Sessions, "sessions", "sqlite", "where sessions live: sqlite (a shared store) or cookie (signed cookies)")
	fl.StringVar(&c.SecretFile, "secret-file", "", "`file` with the cookie-signing key (default DATA/secret, created when missing)")
	fl.DurationVar(&c.Work, "work", 0, "artificial CPU cost per request, like 2ms, to show saturation")
	fl.StringVar(&c.CacheAddr, "cache-addr", "", "`address` of the shared cache: Redis, or scaleout up's embedded server (default: a cache in this process)")
	fl.StringVar(&c.DBURL, "db", "", "PostgreSQL `DSN` of the primary (default: the SQLite file DATA/airline.db)")
	fl.Var(&c.DBReplicas, "db-replica", "PostgreSQL `DSN` of a read replica (repeatable)")
	fl.StringVar(&c.LogLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	c.heartbeatArgs.register(fl)
	if err := parseFlags(env, fl, args); err != nil {
		return helpIsNil(err)
	}
	if fl.NArg() > 0 {
		return usageErrorf("app: unexpected argument %q", fl.Arg(0))
	}
	if c.Sessions != "sqlite" && c.Sessions != "cookie" {
		return usageErrorf("app: --sessions %q: want sqlite or cookie", c.Sessions)
	}
	if c.Work < 0 || c.Work > time.Second {
		return usageErrorf("app: --work %v: want 0 to 1s", c.Work)
	}
	log, err := newLogger(env, c.LogLevel)
	if err != nil {
		return UsageError{Err: err}
	}
	return serveApp(ctx, c, log)
}

// serveApp opens the shared data, builds the app and serves it until ctx is
// done, sending heartbeats when balancers are given.
func serveApp(ctx context.Context, c appConfig, log *slog.Logger) error {
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	router, closeDB, err := openAirlineDB(c, log)
	if err != nil {
		return err
	}
	defer closeDB()
	sessions, cleaner, closeSessions, err := openSessions(ctx, c, log)
	if err != nil {
		return err
	}
	defer closeSessions()
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	self := c.Advertise
	if self == "" {
		self = advertiseURL(ln.Addr())
	}
	if c.ID == "" {
		c.ID, _ = health.IDFromURL(self)
	}
	log = log.With("app", c.ID)
	pax, closePax, err := openPassengers(ctx, c, router, log)
	if err != nil {
		ln.Close()
		return fmt.Errorf("passenger shards: %w", err)
	}
	defer closePax()
	fc, runCache, closeCache, err := openFlightCache(c.CacheAddr, log)
	if err != nil {
		ln.Close()
		return fmt.Errorf("server-side cache: %w", err)
	}
	defer closeCache()
	a, err := app.New(ctx, app.Config{ID: c.ID, DB: router, Postgres: c.DBURL != "", Passengers: pax, Sessions: sessions, Cache: fc, Work: c.Work, Logger: log})
	if err != nil {
		ln.Close()
		return err
	}
	handler, hb, err := c.heartbeatArgs.wrap(c.ID, self, a, log)
	if err != nil {
		ln.Close()
		return err
	}
	log.Info("app serving", "addr", ln.Addr().String())
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	g, gctx := errgroup.WithContext(ctx)
	if len(c.DBReplicas) > 0 {
		g.Go(func() error { return router.Run(gctx) })
	}
	if runCache != nil {
		g.Go(func() error { return runCache(gctx) })
	}
	if cleaner != nil {
		g.Go(func() error {
			session.RunCleanup(gctx, cleaner, 5*time.Minute, func(err error) { log.Warn("session cleanup", "err", err) })
			return nil
		})
	}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	left := make(chan struct{})
	if hb != nil {
		g.Go(func() error {
			defer close(left)
			err := hb(gctx)
			if err != nil && gctx.Err() != nil {
				// Shutting down: a balancer that could not be told we
				// are leaving will find out when our lease runs out.
				log.Warn("heartbeats ended with an error", "err", err)
				return nil
			}
			return err
		})
	} else {
		close(left)
	}
	g.Go(func() error {
		<-gctx.Done()
		// The balancers hear "leaving" first (hb returns once it is sent),
		// so no new request is on its way when the listener closes; then
		// in-flight requests finish.
		<-left
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}

// openAirlineDB opens the airline's database behind a router: the shared
// SQLite file, or a PostgreSQL primary and its replicas.
func openAirlineDB(c appConfig, log *slog.Logger) (*dbrouter.Router, func(), error) {
	if c.DBURL == "" {
		if len(c.DBReplicas) > 0 {
			return nil, nil, usageErrorf("app: --db-replica needs --db (a PostgreSQL primary)")
		}
		db, err := sqlitestore.Open(filepath.Join(c.DataDir, "airline.db"))
		if err != nil {
			return nil, nil, fmt.Errorf("airline database: %w", err)
		}
		r, err := dbrouter.New(dbrouter.Config{Primary: db, Dialect: dbrouter.SQLite{}, Logger: log})
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		return r, func() { db.Close() }, nil
	}
	var dbs []*sql.DB
	closeAll := func() {
		for _, db := range dbs {
			db.Close()
		}
	}
	open := func(dsn string) (*sql.DB, error) {
		db, err := sql.Open("pgx", dsn)
		if err == nil {
			dbs = append(dbs, db)
		}
		return db, err
	}
	primary, err := open(c.DBURL)
	if err != nil {
		return nil, nil, UsageError{Err: fmt.Errorf("--db: %w", err)}
	}
	cfg := dbrouter.Config{Primary: primary, Logger: log}
	for i, dsn := range c.DBReplicas {
		db, err := open(dsn)
		if err != nil {
			closeAll()
			return nil, nil, UsageError{Err: fmt.Errorf("--db-replica: %w", err)}
		}
		cfg.Replicas = append(cfg.Replicas, dbrouter.ReplicaConfig{Name: fmt.Sprintf("replica-%d", i+1), DB: db})
	}
	r, err := dbrouter.New(cfg)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return r, closeAll, nil
}

// passengerShards is how many logical shards hold the passengers.
const passengerShards = 4

// openPassengers opens the passengers' shards: one SQLite file each in the
// data directory, or on PostgreSQL one schema each on the primary (logical
// shards that "scaleout shard move" can later move to other servers).
func openPassengers(ctx context.Context, c appConfig, router *dbrouter.Router, log *slog.Logger) (*shard.Router, func(), error) {
	if c.DBURL == "" {
		r, closeFn, err := shard.OpenSQLite(ctx, shard.SQLiteConfig{
			Dir: filepath.Join(c.DataDir, "passengers"), Shards: passengerShards, DDL: []string{app.PassengerDDL}, Logger: log,
		})
		if err != nil {
			return nil, nil, err
		}
		return r, func() { closeFn() }, nil
	}
	fn, err := shard.NewJump(passengerShards)
	if err != nil {
		return nil, nil, err
	}
	placement := make([]string, passengerShards)
	for i := range placement {
		placement[i] = "main"
	}
	m, err := shard.NewMap(1, fn, placement)
	if err != nil {
		return nil, nil, err
	}
	r, err := shard.New(shard.Config{Map: m, Physical: []shard.Physical{{Name: "main", Router: router}}, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	if err := r.Provision(ctx, app.PassengerDDL); err != nil {
		return nil, nil, err
	}
	return r, func() {}, nil
}

// retrySQLiteBusy runs fn until it stops failing with SQLITE_BUSY (for
// about 10s at most): app processes starting together race to create the
// shared SQLite files, and SQLite refuses some of those races at once
// (switching a new file to WAL, upgrading a read lock) rather than waiting
// on the busy timeout.
func retrySQLiteBusy(ctx context.Context, fn func() error) error {
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt == 30 || !strings.Contains(err.Error(), "SQLITE_BUSY") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// advertiseURL is the URL of a listening address, with loopback standing in
// for a wildcard host (pass --advertise to be reached from elsewhere).
func advertiseURL(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	ip := ap.Addr()
	if ip.IsUnspecified() {
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return "http://" + netip.AddrPortFrom(ip.Unmap(), ap.Port()).String()
}

// openSessions returns the session manager the flags ask for, and the
// store whose expired sessions the app should clean up.
func openSessions(ctx context.Context, c appConfig, log *slog.Logger) (*session.Manager, session.Cleaner, func(), error) {
	cfg := session.Config{Logger: log, CookieName: "airline_session"}
	closer := func() {}
	var cleaner session.Cleaner
	switch c.Sessions {
	case "cookie":
		path := c.SecretFile
		if path == "" {
			path = filepath.Join(c.DataDir, "secret")
		}
		secret, err := loadSecret(path, log)
		if err != nil {
			return nil, nil, nil, err
		}
		for len(secret) < 32 {
			secret = append(secret, secret...)
		}
		codec, err := cookiestore.New(cookiestore.Config{Keys: []cookiestore.Key{{ID: "k1", Secret: secret}}})
		if err != nil {
			return nil, nil, nil, err
		}
		cfg.Codec = codec
		// Revocation needs something shared: the generations live in
		// the SQLite store even when sessions live in cookies.
		fallthrough
	case "sqlite":
		db, err := sqlitestore.Open(filepath.Join(c.DataDir, "sessions.db"))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("session database: %w", err)
		}
		closer = func() { db.Close() }
		var st *sqlitestore.Store
		err = retrySQLiteBusy(ctx, func() (err error) {
			st, err = sqlitestore.New(ctx, sqlitestore.Config{DB: db})
			return err
		})
		if err != nil {
			db.Close()
			return nil, nil, nil, fmt.Errorf("session store: %w", err)
		}
		if cfg.Codec == nil {
			cfg.Store = st
		}
		cfg.Generations = st
		cleaner = st
	}
	m, err := session.New(cfg)
	if err != nil {
		closer()
		return nil, nil, nil, err
	}
	return m, cleaner, closer, nil
}
