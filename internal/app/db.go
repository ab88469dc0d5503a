package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"scaleout/dbrouter"
	"scaleout/dbrouter/keys"
	"scaleout/dbrouter/shard"
)

// The airline's schema follows the lecture. Airports sit apart from flights
// (vertical partitioning: a flight names its airports by code instead of
// repeating their columns); a flight's kind, domestic or international, is
// what horizontal partitioning splits on; passengers hang off a flight.
// The airline's data, partitioned as the lecture describes:
//   - vertically: airports sit apart from flights, which name them by code
//     instead of repeating their columns;
//   - horizontally: flights are split by kind, domestic and international;
//     on PostgreSQL with declarative partitioning (one table per kind
//     behind the flights table), on SQLite as one table, and the queries are
//     the same on both;
//   - sharded: passengers live on several databases (SQLite files, or
//     PostgreSQL schemas), placed by their flight with jump hash, so one
//     flight's passengers are on one shard and a user's bookings across
//     flights are an explicit scatter-gather.
func schema(postgres bool) string {
	flights := `CREATE TABLE IF NOT EXISTS flights (
	id INTEGER PRIMARY KEY,
	origin TEXT NOT NULL REFERENCES airports(code),
	destination TEXT NOT NULL REFERENCES airports(code),
	duration INTEGER NOT NULL,
	kind TEXT NOT NULL CHECK (kind IN ('domestic', 'international')),
	version INTEGER NOT NULL DEFAULT 1
);`
	if postgres {
		flights = `CREATE TABLE IF NOT EXISTS flights (
	id INTEGER NOT NULL,
	origin TEXT NOT NULL REFERENCES airports(code),
	destination TEXT NOT NULL REFERENCES airports(code),
	duration INTEGER NOT NULL,
	kind TEXT NOT NULL CHECK (kind IN ('domestic', 'international')),
	version INTEGER NOT NULL DEFAULT 1,
	PRIMARY KEY (id, kind)
) PARTITION BY LIST (kind);
CREATE TABLE IF NOT EXISTS flights_domestic PARTITION OF flights FOR VALUES IN ('domestic');
CREATE TABLE IF NOT EXISTS flights_international PARTITION OF flights FOR VALUES IN ('international');`
	}
	return `
CREATE TABLE IF NOT EXISTS airports (
	code TEXT PRIMARY KEY,
	city TEXT NOT NULL,
	country TEXT NOT NULL
);
` + flights
}

// passengerDDL creates a shard's passengers table. Ids are UUIDv7: unique
// across shards without coordination, and ordered by time.
const passengerDDL = `CREATE TABLE IF NOT EXISTS {shard}.passengers (
	id TEXT PRIMARY KEY,
	flight_id INTEGER NOT NULL,
	name TEXT NOT NULL,
	booked_by TEXT NOT NULL DEFAULT ''
)`

var sampleAirports = [][3]string{
	{"JFK", "New York", "US"}, {"ORD", "Chicago", "US"}, {"LAX", "Los Angeles", "US"},
	{"SFO", "San Francisco", "US"}, {"BOS", "Boston", "US"}, {"LHR", "London", "GB"},
	{"CDG", "Paris", "FR"}, {"NRT", "Tokyo", "JP"}, {"PEK", "Beijing", "CN"}, {"SYD", "Sydney", "AU"},
}

var sampleFlights = []struct {
	from, to string
	minutes  int
}{
	{"JFK", "LHR", 415}, {"PEK", "SYD", 700}, {"SFO", "CDG", 680}, {"JFK", "LAX", 330},
	{"ORD", "BOS", 145}, {"LAX", "NRT", 690}, {"BOS", "SFO", 390}, {"CDG", "JFK", 500},
	{"NRT", "SFO", 600}, {"ORD", "LAX", 270}, {"LHR", "PEK", 610}, {"SYD", "LAX", 835},
}

// migrate creates the schema and seeds the sample data once. Several app
// processes may start together against one SQLite file: the seeding runs
// in one transaction and is skipped when flights already exist.
func migrate(ctx context.Context, db *sql.DB, postgres bool, pax *shard.Router, ids *keys.UUIDv7) error {
	if postgres {
		// One migration at a time when several servers start together.
		if _, err := db.ExecContext(ctx, "SELECT pg_advisory_lock(4242)"); err != nil {
			return err
		}
		defer db.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(4242)")
	}
	// The schema is created inside the seeding transaction: on SQLite it
	// begins IMMEDIATE (the write lock first, waiting on the busy timeout),
	// so app processes starting together queue instead of failing to
	// upgrade a read lock.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, schema(postgres)); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM flights").Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	country := map[string]string{}
	for _, a := range sampleAirports {
		country[a[0]] = a[2]
		if _, err := tx.ExecContext(ctx, "INSERT INTO airports (code, city, country) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	for i, f := range sampleFlights {
		kind := "international"
		if country[f.from] == country[f.to] {
			kind = "domestic"
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO flights (id, origin, destination, duration, kind) VALUES ($1, $2, $3, $4, $5)", i+1, f.from, f.to, f.minutes, kind); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for i, name := range []string{"Harry", "Ron", "Hermione", "Ginny", "Draco", "Cho", "Cedric", "Luna"} {
		if err := insertPassenger(ctx, pax, ids, int64(i%4+1), name, ""); err != nil {
			return err
		}
	}
	return nil
}

func insertPassenger(ctx context.Context, pax *shard.Router, ids *keys.UUIDv7, flightID int64, name, user string) error {
	_, err := pax.Exec(ctx, shard.IntKey(flightID),
		"INSERT INTO {shard}.passengers (id, flight_id, name, booked_by) VALUES ($1, $2, $3, $4)",
		ids.Next().String(), flightID, name, user)
	return err
}

// Flight is one flight with its airports' cities.
type Flight struct {
	ID          int64  `json:"id"`
	Origin      string `json:"origin"`
	OriginCity  string `json:"origin_city"`
	Destination string `json:"destination"`
	DestCity    string `json:"destination_city"`
	Duration    int    `json:"duration"`
	Kind        string `json:"kind"`
	Version     int64  `json:"version"`
	Passengers  int    `json:"passengers"`
}

const flightColumns = `f.id, f.origin, o.city, f.destination, d.city, f.duration, f.kind, f.version
	FROM flights f JOIN airports o ON o.code = f.origin JOIN airports d ON d.code = f.destination`

func scanFlight(row interface{ Scan(...any) error }) (Flight, error) {
	var f Flight
	err := row.Scan(&f.ID, &f.Origin, &f.OriginCity, &f.Destination, &f.DestCity, &f.Duration, &f.Kind, &f.Version)
	return f, err
}

// passengerCounts counts passengers per flight across every shard.
func passengerCounts(ctx context.Context, pax *shard.Router) (map[int64]int, error) {
	res, err := pax.Scatter(ctx, shard.ScatterQuery{SQL: "SELECT flight_id, count(*) FROM {shard}.passengers GROUP BY flight_id"})
	if err != nil {
		return nil, fmt.Errorf("passenger counts: %w", err)
	}
	counts := make(map[int64]int, len(res.Rows))
	for _, row := range res.Rows {
		counts[asInt(row[0])] += int(asInt(row[1]))
	}
	return counts, nil
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case float64:
		return int64(x)
	}
	return 0
}

// The app reaches its database through the router: reads are declared
// read-only (dbrouter.ReadOnly), so on a replicated cluster they go to a
// replica that has caught up with the user's last write; writes go to the
// primary.

func listFlights(ctx context.Context, db *dbrouter.Router, pax *shard.Router) ([]Flight, error) {
	counts, err := passengerCounts(ctx, pax)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(dbrouter.ReadOnly(ctx), "SELECT "+flightColumns+" ORDER BY f.id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Flight
	for rows.Next() {
		f, err := scanFlight(rows)
		if err != nil {
			return nil, err
		}
		f.Passengers = counts[f.ID]
		out = append(out, f)
	}
	return out, rows.Err()
}

var errNoFlight = errors.New("no such flight")

func getFlight(ctx context.Context, db *dbrouter.Router, pax *shard.Router, id int64) (Flight, []string, error) {
	ctx = dbrouter.ReadOnly(ctx)
	f, err := scanFlight(db.QueryRowContext(ctx, "SELECT "+flightColumns+" WHERE f.id = $1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return f, nil, errNoFlight
	}
	if err != nil {
		return f, nil, err
	}
	rows, err := pax.Query(ctx, shard.IntKey(id), "SELECT name FROM {shard}.passengers WHERE flight_id = $1 ORDER BY id", id)
	if err != nil {
		return f, nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return f, nil, err
		}
		names = append(names, n)
	}
	f.Passengers = len(names)
	return f, names, rows.Err()
}

// book adds a passenger to a flight's shard, then bumps the flight's
// version, which its ETag is made from. The two databases commit apart: a
// crash in between leaves the passenger booked and the page's ETag old for
// as long as caches keep it, never a lost booking.
func book(ctx context.Context, db *dbrouter.Router, pax *shard.Router, ids *keys.UUIDv7, flightID int64, name, user string) error {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return errBadName
	}
	var one int
	err := db.QueryRowContext(ctx, "SELECT 1 FROM flights WHERE id = $1", flightID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return errNoFlight
	}
	if err != nil {
		return err
	}
	if err := insertPassenger(ctx, pax, ids, flightID, name, user); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "UPDATE flights SET version = version + 1 WHERE id = $1", flightID)
	return err
}

var errBadName = errors.New("a passenger's name must have 1 to 100 characters")

// bookingsOf gathers a user's bookings from every shard, newest last.
func bookingsOf(ctx context.Context, db *dbrouter.Router, pax *shard.Router, user string) ([]string, error) {
	res, err := pax.Scatter(ctx, shard.ScatterQuery{
		SQL:     "SELECT id, flight_id, name FROM {shard}.passengers WHERE booked_by = $1 ORDER BY id LIMIT 100",
		Args:    []any{user},
		OrderBy: []shard.Order{{Column: 0}},
		Limit:   100,
	})
	if err != nil {
		return nil, fmt.Errorf("bookings: %w", err)
	}
	fl, err := listFlightsOnly(ctx, db)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(res.Rows))
	for _, row := range res.Rows {
		id := asInt(row[1])
		name, _ := row[2].(string)
		if b, ok := row[2].([]byte); ok {
			name = string(b)
		}
		f := fl[id]
		out = append(out, fmt.Sprintf("%s on flight %d (%s to %s)", name, id, f.Origin, f.Destination))
	}
	return out, nil
}

// listFlightsOnly returns the flights by id, without passenger counts.
func listFlightsOnly(ctx context.Context, db *dbrouter.Router) (map[int64]Flight, error) {
	rows, err := db.QueryContext(dbrouter.ReadOnly(ctx), "SELECT "+flightColumns)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]Flight{}
	for rows.Next() {
		f, err := scanFlight(rows)
		if err != nil {
			return nil, err
		}
		out[f.ID] = f
	}
	return out, rows.Err()
}
