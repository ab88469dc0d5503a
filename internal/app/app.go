// Package app is scaleout's example app server: the lecture's airline. It
// lists flights, shows a flight with its passengers, books a passenger (a
// form and a POST), and logs a user in to show sessions. It is built from
// the project's own parts: sessions shared by every app server, HTTP
// caching headers (ETag/304, public pages the balancer may cache, private
// per-user pages), a server-side cache of the flight list invalidated by
// bookings, and an SQLite database that every app process on the machine
// shares. Each page says which server answered, so a person sees balancing.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"scaleout/dbrouter"
	"scaleout/dbrouter/keys"
	"scaleout/dbrouter/shard"
	"scaleout/httpcache"
	"scaleout/session"
)

// FlightCache is the server-side cache of the flight list, shared by every
// app server. Flights returns the list, loading it with load on a miss;
// Invalidate drops what a booking on a flight changed.
type FlightCache interface {
	Flights(ctx context.Context, load func(context.Context) ([]Flight, error)) ([]Flight, error)
	Invalidate(ctx context.Context, flightID int64) error
}

// Config configures the app.
type Config struct {
	// ID names this server on every page and in the X-Served-By header.
	ID string
	// DB routes the airline's queries (over one SQLite file, or a
	// PostgreSQL primary and its replicas); the caller owns it. Required.
	DB *dbrouter.Router
	// Postgres says the database is PostgreSQL (else SQLite), for the
	// schema.
	Postgres bool
	// Passengers holds the passengers, sharded by flight; its shards must
	// have the table PassengerDDL creates. Required.
	Passengers *shard.Router
	// Sessions loads and saves sessions. If nil, login is unavailable.
	Sessions *session.Manager
	// Cache caches the flight list. If nil, every list is a query.
	Cache FlightCache
	// Work is an artificial CPU cost spent on every page, so one machine
	// can show a server saturating. If zero, none.
	Work time.Duration
	// Logger receives errors. If nil, nothing is logged.
	Logger *slog.Logger
}

// App is the airline's HTTP handler. It is safe for concurrent use.
type App struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
	ids *keys.UUIDv7
}

// PassengerDDL creates the passengers table on each shard ({shard} is the
// shard's schema, or "main" on SQLite).
const PassengerDDL = passengerDDL

// New prepares the database (schema and sample data, once) and returns the
// app.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.DB == nil || cfg.Passengers == nil {
		return nil, errors.New("app: a database and passenger shards are required")
	}
	if cfg.ID == "" {
		cfg.ID = "app"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &App{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), ids: keys.NewUUIDv7(nil)}
	if err := migrateRetrying(ctx, cfg, a); err != nil {
		return nil, fmt.Errorf("app database: %w", err)
	}
	a.routes()
	return a, nil
}

// migrateRetrying runs the migration, retrying while SQLite reports the
// database busy: app processes starting together race to create the shared
// files, and SQLite refuses some of those races at once instead of waiting
// (switching a new file to WAL, upgrading a read lock).
func migrateRetrying(ctx context.Context, cfg Config, a *App) error {
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := migrate(ctx, cfg.DB.Primary(), cfg.Postgres, cfg.Passengers, a.ids)
		if err == nil || cfg.Postgres || attempt == 30 || !strings.Contains(err.Error(), "SQLITE_BUSY") {
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

// Cache policies, chosen deliberately. The flight list and a flight's page
// are the same for everyone. A flight's page may be kept by the balancer's
// shared cache (s-maxage) because a booking, a POST to it, purges it there;
// browsers revalidate it with its ETag each time (max-age=0). The list
// changes with any booking, which no single URL's purge reaches, so every
// cache revalidates it each time: a cheap 304 answered from the server-side
// cache. Per-user pages are private.
var (
	listPolicy   = httpcache.Policy{Public: true, MaxAge: -1}
	flightPolicy = httpcache.Policy{Public: true, MaxAge: -1, SMaxAge: 30 * time.Second, StaleIfError: time.Minute}
	userPolicy   = httpcache.Policy{Private: true, NoCache: true}
)

func (a *App) routes() {
	a.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/flights", http.StatusFound)
	})
	a.mux.HandleFunc("GET /flights", a.handleFlights)
	a.mux.HandleFunc("GET /api/flights", a.handleFlightsJSON)
	a.mux.HandleFunc("GET /flights/{id}", a.handleFlight)
	a.mux.HandleFunc("POST /flights/{id}/book", a.handleBook)
	a.mux.HandleFunc("GET /login", a.handleLoginForm)
	a.mux.HandleFunc("POST /login", a.handleLogin)
	a.mux.HandleFunc("POST /logout", a.handleLogout)
	a.mux.HandleFunc("GET /me", a.handleMe)
	a.mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		userPolicy.Apply(w.Header())
		fmt.Fprintln(w, a.cfg.ID)
	})
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
}

// ServeHTTP serves the app's pages.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Served-By", a.cfg.ID)
	if a.cfg.Work > 0 {
		spin(a.cfg.Work)
	}
	if a.cfg.Sessions != nil {
		a.cfg.Sessions.Handler(http.HandlerFunc(a.withDBSession)).ServeHTTP(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// withDBSession gives the request the user's read-your-writes scope: the
// consistency token of their last write, kept in their session, so a read
// through any app server waits for a replica that has replayed it.
func (a *App) withDBSession(w http.ResponseWriter, r *http.Request) {
	dbs := &dbrouter.Session{}
	if s := session.FromContext(r.Context()); s != nil {
		if v, ok := session.Get[string](s, dbTokenKey); ok {
			if t, err := dbrouter.DecodeToken(v); err == nil {
				dbs.Observe(t)
			}
		}
	}
	a.mux.ServeHTTP(w, r.WithContext(dbrouter.WithSession(r.Context(), dbs)))
}

// dbTokenKey is the session key of the user's last write's token.
const dbTokenKey = "db_token"

// rememberWrite keeps the request's newest write token in the user's
// session (on SQLite there is none, and nothing is written).
func rememberWrite(r *http.Request) {
	dbs, ok := dbrouter.SessionFrom(r.Context())
	s := session.FromContext(r.Context())
	if !ok || s == nil {
		return
	}
	if t := dbs.Token(); !t.IsZero() {
		s.Put(dbTokenKey, t.Encode())
	}
}

// spin burns CPU for d, standing in for real work.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		for i := 0; i < 1000; i++ {
			_ = i * i
		}
	}
}

func (a *App) flights(ctx context.Context) ([]Flight, error) {
	load := func(ctx context.Context) ([]Flight, error) { return listFlights(ctx, a.cfg.DB, a.cfg.Passengers) }
	if a.cfg.Cache == nil {
		return load(ctx)
	}
	return a.cfg.Cache.Flights(ctx, load)
}

func (a *App) handleFlights(w http.ResponseWriter, r *http.Request) {
	a.serveList(w, r, func(fl []Flight) { a.render(w, r, "flights", map[string]any{"Flights": fl}) })
}

func (a *App) handleFlightsJSON(w http.ResponseWriter, r *http.Request) {
	a.serveList(w, r, func(fl []Flight) { writeJSON(w, fl) })
}

// serveList answers a request for the flight list: from the cache, with
// its caching headers, a 304 when the client's copy is current, else write.
func (a *App) serveList(w http.ResponseWriter, r *http.Request, write func([]Flight)) {
	fl, err := a.flights(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	listPolicy.Apply(w.Header())
	if httpcache.CheckPreconditions(w, r, httpcache.Validators{ETag: listETag(fl)}) {
		return
	}
	write(fl)
}

// listETag is a weak entity-tag from the flights' versions: the list's
// data, whichever server renders it.
func listETag(fl []Flight) string {
	var sum int64
	for _, f := range fl {
		sum = sum*31 + f.Version
	}
	return httpcache.VersionETag("l"+strconv.FormatInt(sum, 36)+"-"+strconv.Itoa(len(fl)), true)
}

func (a *App) handleFlight(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, "a flight id is a positive number", http.StatusBadRequest)
		return
	}
	f, names, err := getFlight(r.Context(), a.cfg.DB, a.cfg.Passengers, id)
	if errors.Is(err, errNoFlight) {
		http.Error(w, "no such flight", http.StatusNotFound)
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	flightPolicy.Apply(w.Header())
	if httpcache.CheckPreconditions(w, r, httpcache.Validators{ETag: httpcache.VersionETag("f"+strconv.FormatInt(f.Version, 10), true)}) {
		return
	}
	a.render(w, r, "flight", map[string]any{"Flight": f, "Passengers": names})
}

func (a *App) handleBook(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, "a flight id is a positive number", http.StatusBadRequest)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	user := ""
	if s := session.FromContext(r.Context()); s != nil {
		user = s.UserID()
	}
	err = book(r.Context(), a.cfg.DB, a.cfg.Passengers, a.ids, id, r.PostForm.Get("name"), user)
	switch {
	case errors.Is(err, errBadName):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case errors.Is(err, errNoFlight):
		http.Error(w, "no such flight", http.StatusNotFound)
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	rememberWrite(r)
	// Invalidate after the write has committed, so no reader can put the
	// old list back after this point.
	if a.cfg.Cache != nil {
		if err := a.cfg.Cache.Invalidate(r.Context(), id); err != nil {
			a.log.Error("cache invalidation failed", "flight", id, "err", err)
		}
	}
	http.Redirect(w, r, "/flights/"+strconv.FormatInt(id, 10), http.StatusSeeOther)
}

func (a *App) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	userPolicy.Apply(w.Header())
	a.render(w, r, "login", nil)
}

func (a *App) handleLogin(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	if s == nil {
		http.Error(w, "sessions are off on this server", http.StatusNotImplemented)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	name := r.PostForm.Get("name")
	if name == "" || len(name) > 64 {
		http.Error(w, "a user name must have 1 to 64 characters", http.StatusBadRequest)
		return
	}
	if err := a.cfg.Sessions.Login(r.Context(), s, name); err != nil {
		a.fail(w, r, err)
		return
	}
	s.Put("since", a.cfg.ID)
	http.Redirect(w, r, "/me", http.StatusSeeOther)
}

func (a *App) handleLogout(w http.ResponseWriter, r *http.Request) {
	if s := session.FromContext(r.Context()); s != nil {
		if err := a.cfg.Sessions.Logout(r.Context(), s); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	http.Redirect(w, r, "/flights", http.StatusSeeOther)
}

func (a *App) handleMe(w http.ResponseWriter, r *http.Request) {
	userPolicy.Apply(w.Header())
	s := session.FromContext(r.Context())
	var user, since string
	if s != nil {
		user = s.UserID()
		since, _ = session.Get[string](s, "since")
	}
	if user == "" {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	bookings, err := bookingsOf(r.Context(), a.cfg.DB, a.cfg.Passengers, user)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.render(w, r, "me", map[string]any{"User": user, "LoggedInOn": since, "Bookings": bookings})
}

func (a *App) fail(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("request failed", "path", r.URL.Path, "err", err)
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "internal error", http.StatusInternalServerError)
}
