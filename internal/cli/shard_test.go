package cli

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scaleout/dbrouter/shard"
	"scaleout/internal/testserver"
)

func TestShardMoveFlagErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mapFile := filepath.Join(dir, "map.json")
	os.WriteFile(mapFile, []byte(`{"epoch":1,"func":{"kind":"jump","shards":2},"placement":["a","b"]}`), 0o644)
	ddl := filepath.Join(dir, "ddl.sql")
	os.WriteFile(ddl, []byte("CREATE TABLE {shard}.t (id BIGINT PRIMARY KEY);\n"), 0o644)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"epoch":1,"func":{"kind":"jump","shards":2},"placement":["a"]}`), 0o644)
	base := []string{"shard", "move", "--map", mapFile, "--shard", "1", "--to", "a", "--ddl", ddl, "--db", "a=postgres://127.0.0.1:1/x", "--db", "b=postgres://127.0.0.1:1/y"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"shard"}, "no subcommand"},
		{"unknown subcommand", []string{"shard", "split"}, `unknown subcommand "split"`},
		{"no map", []string{"shard", "move", "--shard", "1"}, "--map is required"},
		{"no shard", []string{"shard", "move", "--map", mapFile}, "--shard is required"},
		{"bad db flag", append(base, "--db", "nodsn"), "want NAME=DSN"},
		{"duplicate db", append(base, "--db", "a=x"), `"a" given twice`},
		{"shard out of range", append(append([]string{}, base[:5]...), append([]string{"7"}, base[6:]...)...), "shards 0..1"},
		{"unknown destination", append(append([]string{}, base[:7]...), append([]string{"zz"}, base[8:]...)...), `"zz": no such physical database`},
		{"bad map", append([]string{"shard", "move", "--map", bad}, base[4:]...), "1 placements for 2 logical shards"},
		{"map missing a db", base[: len(base)-2 : len(base)-2], `placed on "b", which is not in Physical`},
		{"bad ranges", append(base, "--verify-ranges", "0"), "--verify-ranges 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := Run(ctx, tc.args, &out, &errb)
			if err == nil || !strings.Contains(err.Error()+errb.String(), tc.want) {
				t.Errorf("scaleout %v: error %v (stderr %q), want one containing %q", tc.args, err, errb.String(), tc.want)
			}
		})
	}
}

// TestShardMoveCommand moves a shard between two real PostgreSQL servers
// with the command, and checks its progress output, the rows and the map
// file.
func TestShardMoveCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var dsns [2]string
	var dbs [2]*sql.DB
	var phys []shard.Physical
	for i := range 2 {
		s := testserver.StartPostgres(t, testserver.PostgresConfig{Settings: []string{"wal_level=logical"}})
		dsns[i] = s.CreateDB(t, "app")
		db, err := sql.Open("pgx", dsns[i])
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs[i] = db
		phys = append(phys, shard.Physical{Name: fmt.Sprintf("pg%d", i), DB: db})
	}
	fn, _ := shard.NewJump(4)
	m, _ := shard.NewMap(1, fn, []string{"pg0", "pg1", "pg0", "pg1"})
	r, err := shard.New(shard.Config{Map: m, Physical: phys})
	if err != nil {
		t.Fatal(err)
	}
	const ddl = "CREATE TABLE IF NOT EXISTS {shard}.passengers (\n  id BIGINT PRIMARY KEY,\n  name TEXT NOT NULL\n);\n"
	if err := r.Provision(ctx, ddl); err != nil {
		t.Fatal(err)
	}
	n := 0
	for k := int64(0); n < 200; k++ {
		if m.Shard(shard.IntKey(k)) == 1 {
			if _, err := r.Exec(ctx, shard.IntKey(k), "INSERT INTO {shard}.passengers VALUES ($1, 'p')", k); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	dir := t.TempDir()
	mapFile, ddlFile := filepath.Join(dir, "map.json"), filepath.Join(dir, "ddl.sql")
	b, _ := m.MarshalJSON()
	os.WriteFile(mapFile, b, 0o644)
	os.WriteFile(ddlFile, []byte(ddl), 0o644)
	var out, errb bytes.Buffer
	err = Run(ctx, []string{"shard", "move", "--map", mapFile, "--shard", "1", "--to", "pg0", "--ddl", ddlFile,
		"--db", "pg0=" + dsns[0], "--db", "pg1=" + dsns[1]}, &out, &errb)
	if err != nil {
		t.Fatalf("shard move: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	for _, want := range []string{"copy", "verify", "cutover", "done: shard_0001 is on pg0 at epoch 2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	nm, err := readMap(mapFile)
	if err != nil || nm.Epoch() != 2 || nm.Placement(1) != "pg0" {
		t.Fatalf("map file after the move: %v, %v", nm, err)
	}
	var got int
	if err := dbs[0].QueryRowContext(ctx, "SELECT count(*) FROM shard_0001.passengers").Scan(&got); err != nil || got != 200 {
		t.Errorf("destination has %d rows (err %v), want 200", got, err)
	}
	var out2 bytes.Buffer
	if err := Run(ctx, []string{"shard", "show", "--map", mapFile}, &out2, &errb); err != nil || !strings.Contains(out2.String(), "shard_0001 -> pg0") {
		t.Errorf("shard show: %v\n%s", err, out2.String())
	}
}
