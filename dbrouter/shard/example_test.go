package shard_test

import (
	"context"
	"fmt"
	"os"

	"scaleout/dbrouter/shard"
)

// The embedded default: passengers sharded by flight over four SQLite files.
func ExampleOpenSQLite() {
	dir, _ := os.MkdirTemp("", "shard-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	r, closeAll, err := shard.OpenSQLite(ctx, shard.SQLiteConfig{
		Dir: dir, Shards: 4,
		DDL: []string{"CREATE TABLE IF NOT EXISTS {shard}.passengers (id INTEGER PRIMARY KEY, flight_id INTEGER, name TEXT)"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeAll()
	flight := shard.IntKey(7)
	r.Exec(ctx, flight, "INSERT INTO {shard}.passengers VALUES (1, 7, 'Alice')")
	var name string
	err = r.QueryRow(ctx, flight, "SELECT name FROM {shard}.passengers WHERE flight_id = 7").Scan(&name)
	fmt.Println(name, err)
	res, err := r.Scatter(ctx, shard.ScatterQuery{SQL: "SELECT count(*) FROM {shard}.passengers"})
	fmt.Println(len(res.Rows), res.Partial, err)
	// Output:
	// Alice <nil>
	// 4 false <nil>
}

// A shard map in its file form, and a hot tenant pinned by a directory.
func ExampleParseMap() {
	m, err := shard.ParseMap([]byte(`{"epoch": 3,
		"func": {"kind": "directory", "entries": [{"key": "big-airline", "shard": 1}],
		         "fallback": {"kind": "jump", "shards": 2}},
		"placement": ["pg-a", "pg-b"]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	s := m.Shard(shard.StringKey("big-airline"))
	fmt.Println(m.Epoch(), s, m.Placement(s))
	// Output: 3 1 pg-b
}
