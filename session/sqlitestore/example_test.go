package sqlitestore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"scaleout/session"
	"scaleout/session/sqlitestore"
)

// One SQLite file shared by the app processes of one machine, with expired
// sessions cleaned up in the background.
func Example() {
	dir, _ := os.MkdirTemp("", "sessions")
	defer os.RemoveAll(dir)
	db, err := sqlitestore.Open(filepath.Join(dir, "sessions.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlitestore.New(ctx, sqlitestore.Config{DB: db})
	if err != nil {
		panic(err)
	}
	go session.RunCleanup(ctx, st, 5*time.Minute, nil)
	m, err := session.New(session.Config{Store: st, Generations: st})
	fmt.Println(m != nil, err)
	// Output: true <nil>
}
