package dbrouter_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"scaleout/dbrouter"
)

// The embedded default: one SQLite database behind the same API the app uses
// on a PostgreSQL cluster. Writes go to the primary; reads marked read-only
// would go to a replica if there were one.
func Example() {
	dir, _ := os.MkdirTemp("", "dbrouter-example")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", filepath.Join(dir, "app.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	r, err := dbrouter.New(dbrouter.Config{Primary: db, Dialect: dbrouter.SQLite{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	r.ExecContext(ctx, "CREATE TABLE flights (id INTEGER PRIMARY KEY, origin TEXT)")
	r.ExecContext(ctx, "INSERT INTO flights VALUES (1, 'New York')")
	var origin string
	err = r.QueryRowContext(dbrouter.ReadOnly(ctx), "SELECT origin FROM flights WHERE id = 1").Scan(&origin)
	fmt.Println(origin, err)
	// Output: New York <nil>
}

// A session's consistency token travels between requests, and between app
// servers, as a string in the user's session.
func ExampleSession() {
	// Request 1, on app server A, after a write: store the token.
	a := dbrouter.NewSession(dbrouter.Token{LSN: 0x16B3748})
	cookieValue := a.Token().Encode()
	fmt.Println(cookieValue)

	// Request 2, on app server B: restore it; reads under this context wait
	// for a replica that has replayed the write.
	tok, err := dbrouter.DecodeToken(cookieValue)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := dbrouter.ReadOnly(dbrouter.WithSession(context.Background(), dbrouter.NewSession(tok)))
	s, _ := dbrouter.SessionFrom(ctx)
	fmt.Println(s.Token().LSN, dbrouter.IsReadOnly(ctx))
	// Output:
	// v1:0/16B3748
	// 0/16B3748 true
}

// ParseLSN reads PostgreSQL's text form of a WAL position.
func ExampleParseLSN() {
	a, _ := dbrouter.ParseLSN("0/16B3748")
	b, _ := dbrouter.ParseLSN("1/0")
	fmt.Println(a < b, b)
	// Output: true 1/0
}
