package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// The airline's schema follows the lecture. Airports sit apart from flights
// (vertical partitioning: a flight names its airports by code instead of
// repeating their columns); a flight's kind, domestic or international, is
// what horizontal partitioning splits on; passengers hang off a flight.
const schema = `
CREATE TABLE IF NOT EXISTS airports (
	code TEXT PRIMARY KEY,
	city TEXT NOT NULL,
	country TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS flights (
	id INTEGER PRIMARY KEY,
	origin TEXT NOT NULL REFERENCES airports(code),
	destination TEXT NOT NULL REFERENCES airports(code),
	duration INTEGER NOT NULL,
	kind TEXT NOT NULL CHECK (kind IN ('domestic', 'international')),
	version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS passengers (
	id INTEGER PRIMARY KEY,
	flight_id INTEGER NOT NULL REFERENCES flights(id),
	name TEXT NOT NULL,
	booked_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS passengers_flight ON passengers(flight_id);
`

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
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
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
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO airports (code, city, country) VALUES (?, ?, ?)", a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	for i, f := range sampleFlights {
		kind := "international"
		if country[f.from] == country[f.to] {
			kind = "domestic"
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO flights (id, origin, destination, duration, kind) VALUES (?, ?, ?, ?, ?)", i+1, f.from, f.to, f.minutes, kind); err != nil {
			return err
		}
	}
	for i, name := range []string{"Harry", "Ron", "Hermione", "Ginny", "Draco", "Cho", "Cedric", "Luna"} {
		if _, err := tx.ExecContext(ctx, "INSERT INTO passengers (flight_id, name) VALUES (?, ?)", i%4+1, name); err != nil {
			return err
		}
	}
	return tx.Commit()
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

const flightColumns = `f.id, f.origin, o.city, f.destination, d.city, f.duration, f.kind, f.version,
	(SELECT count(*) FROM passengers p WHERE p.flight_id = f.id)
	FROM flights f JOIN airports o ON o.code = f.origin JOIN airports d ON d.code = f.destination`

func scanFlight(row interface{ Scan(...any) error }) (Flight, error) {
	var f Flight
	err := row.Scan(&f.ID, &f.Origin, &f.OriginCity, &f.Destination, &f.DestCity, &f.Duration, &f.Kind, &f.Version, &f.Passengers)
	return f, err
}

// querier is what the app needs of its database: the router or a *sql.DB.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

func listFlights(ctx context.Context, db querier) ([]Flight, error) {
	rows, err := db.QueryContext(ctx, "SELECT "+flightColumns+" ORDER BY f.id")
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
		out = append(out, f)
	}
	return out, rows.Err()
}

var errNoFlight = errors.New("no such flight")

func getFlight(ctx context.Context, db querier, id int64) (Flight, []string, error) {
	f, err := scanFlight(db.QueryRowContext(ctx, "SELECT "+flightColumns+" WHERE f.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return f, nil, errNoFlight
	}
	if err != nil {
		return f, nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT name FROM passengers WHERE flight_id = ? ORDER BY id", id)
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
	return f, names, rows.Err()
}

// book adds a passenger to a flight and bumps the flight's version, which
// its ETag is made from, in one transaction.
func book(ctx context.Context, db querier, flightID int64, name, user string) error {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return errBadName
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "UPDATE flights SET version = version + 1 WHERE id = ?", flightID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNoFlight
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO passengers (flight_id, name, booked_by) VALUES (?, ?, ?)", flightID, name, user); err != nil {
		return err
	}
	return tx.Commit()
}

var errBadName = errors.New("a passenger's name must have 1 to 100 characters")

func bookingsOf(ctx context.Context, db querier, user string) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT p.name || ' on flight ' || f.id || ' (' || f.origin || ' to ' || f.destination || ')'
		FROM passengers p JOIN flights f ON f.id = p.flight_id WHERE p.booked_by = ? ORDER BY p.id`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
