package cli

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"scaleout/dbrouter/shard"
)

// dbFlags collects repeated --db NAME=DSN flags.
type dbFlags map[string]string

func (d dbFlags) String() string { return fmt.Sprint(len(d), " databases") }
func (d dbFlags) Set(v string) error {
	name, dsn, ok := strings.Cut(v, "=")
	if !ok || name == "" || dsn == "" {
		return fmt.Errorf("want NAME=DSN, got %q", v)
	}
	if _, dup := d[name]; dup {
		return fmt.Errorf("database %q given twice", name)
	}
	d[name] = dsn
	return nil
}

// runShard dispatches "scaleout shard move|show".
func runShard(ctx context.Context, env *Env, args []string) error {
	const synopsis = "shard move|show [flags]   (\"scaleout shard move -h\" for a subcommand's flags)"
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fs := newFlagSet(env, "shard", synopsis)
		if len(args) == 0 {
			fs.Usage()
			return usageErrorf("shard: no subcommand (want move or show)")
		}
		fs.SetOutput(env.Stdout)
		fs.Usage()
		return nil
	}
	switch args[0] {
	case "move":
		return runShardMove(ctx, env, args[1:])
	case "show":
		return runShardShow(env, args[1:])
	}
	return usageErrorf("shard: unknown subcommand %q (want move or show)", args[0])
}

// runShardShow prints a map file: epoch, function and placement.
func runShardShow(env *Env, args []string) error {
	fs := newFlagSet(env, "shard show", "shard show --map FILE")
	mapFile := fs.String("map", "", "shard map `file` (JSON)")
	if err := parseFlags(env, fs, args); err != nil {
		return helpIsNil(err)
	}
	if *mapFile == "" {
		return usageErrorf("shard show: --map is required")
	}
	m, err := readMap(*mapFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "epoch %d, %d logical shards (%T)\n", m.Epoch(), m.Shards(), m.Func())
	for s := range m.Shards() {
		fmt.Fprintf(env.Stdout, "  %s -> %s\n", shard.SchemaName(s), m.Placement(s))
	}
	return nil
}

type shardMoveFlags struct {
	mapFile, to, ddlFile, conninfo string
	shardN, ranges                 int
	fenceTimeout, copyTimeout      time.Duration
	dropSource                     bool
	dbs                            dbFlags
}

func runShardMove(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "shard move", "shard move --map FILE --shard N --to NAME --db NAME=DSN... --ddl FILE [flags]")
	f := shardMoveFlags{dbs: dbFlags{}}
	fs.StringVar(&f.mapFile, "map", "", "shard map `file` (JSON); rewritten with the new epoch after the move")
	fs.IntVar(&f.shardN, "shard", -1, "logical shard to move")
	fs.StringVar(&f.to, "to", "", "destination physical database `name`")
	fs.Var(f.dbs, "db", "physical database NAME=DSN (PostgreSQL URL; repeat for every database the map names)")
	fs.StringVar(&f.ddlFile, "ddl", "", "`file` of the shard's CREATE TABLE statements, {shard} for its schema, each ending with ';' at a line end")
	fs.StringVar(&f.conninfo, "source-conninfo", "", "connection string the destination server uses to reach the source (default: the source's --db DSN)")
	fs.IntVar(&f.ranges, "verify-ranges", 8, "key ranges per table compared by count and checksum")
	fs.DurationVar(&f.copyTimeout, "copy-timeout", 10*time.Minute, "bound on the initial copy and catch-up")
	fs.DurationVar(&f.fenceTimeout, "fence-timeout", time.Minute, "bound on the window in which writes to the shard are refused")
	fs.BoolVar(&f.dropSource, "drop-source", false, "drop the shard's schema on the source after cutover")
	if err := parseFlags(env, fs, args); err != nil {
		return helpIsNil(err)
	}
	if err := f.check(fs); err != nil {
		return err
	}
	m, err := readMap(f.mapFile)
	if err != nil {
		return err
	}
	ddl, err := readDDL(f.ddlFile)
	if err != nil {
		return err
	}
	r, closeAll, err := openShardRouter(m, f.dbs)
	if err != nil {
		return err
	}
	defer closeAll()
	if f.shardN >= m.Shards() {
		return usageErrorf("shard move: --shard %d: the map has shards 0..%d", f.shardN, m.Shards()-1)
	}
	if f.conninfo == "" {
		f.conninfo = f.dbs[m.Placement(f.shardN)]
	}
	fmt.Fprintf(env.Stdout, "moving %s from %s to %s (map epoch %d)\n", shard.SchemaName(f.shardN), m.Placement(f.shardN), f.to, m.Epoch())
	nm, err := r.MovePostgres(ctx, shard.Move{
		Shard: f.shardN, To: f.to, SourceConninfo: f.conninfo, DDL: ddl, VerifyRanges: f.ranges,
		CopyTimeout: f.copyTimeout, FenceTimeout: f.fenceTimeout, DropSource: f.dropSource,
		Progress: shardMoveProgress(env),
	})
	if err != nil {
		return err
	}
	if err := writeMap(f.mapFile, nm); err != nil {
		return fmt.Errorf("the move is done (epoch %d) but the map file was not updated: %w", nm.Epoch(), err)
	}
	fmt.Fprintf(env.Stdout, "done: %s is on %s at epoch %d; %s updated\n", shard.SchemaName(f.shardN), f.to, nm.Epoch(), f.mapFile)
	return nil
}

func (f *shardMoveFlags) check(fs *flag.FlagSet) error {
	switch {
	case fs.NArg() > 0:
		return usageErrorf("shard move: unexpected argument %q", fs.Arg(0))
	case f.mapFile == "":
		return usageErrorf("shard move: --map is required")
	case f.shardN < 0:
		return usageErrorf("shard move: --shard is required (a logical shard number, from 0)")
	case f.to == "":
		return usageErrorf("shard move: --to is required")
	case f.ddlFile == "":
		return usageErrorf("shard move: --ddl is required (logical replication copies rows, not tables)")
	case len(f.dbs) == 0:
		return usageErrorf("shard move: give every database with --db NAME=DSN")
	case f.ranges < 1:
		return usageErrorf("shard move: --verify-ranges %d: want at least 1", f.ranges)
	case f.fenceTimeout <= 0 || f.copyTimeout <= 0:
		return usageErrorf("shard move: timeouts must be positive")
	}
	return nil
}

// shardMoveProgress prints a line when the phase changes, and at most twice a
// second within one.
func shardMoveProgress(env *Env) func(shard.Progress) {
	var last string
	var at time.Time
	return func(p shard.Progress) {
		if p.Phase == last && time.Since(at) < 500*time.Millisecond {
			return
		}
		last, at = p.Phase, time.Now()
		fmt.Fprintf(env.Stdout, "%8s  %-9s tables %d/%d  lag %d B  verified %d/%d ranges (%d rows)  fenced %v\n",
			p.Elapsed.Round(time.Millisecond), p.Phase, p.TablesCopied, p.Tables, p.LagBytes,
			p.RangesMatched, p.Ranges, p.Rows, p.Fenced.Round(time.Millisecond))
	}
}

func readMap(path string) (*shard.Map, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("shard map: %w", err)
	}
	m, err := shard.ParseMap(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// writeMap replaces the map file atomically (write, then rename).
func writeMap(path string, m *shard.Map) error {
	b, err := m.MarshalJSON()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".shardmap-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readDDL splits a file into statements at semicolons that end a line.
func readDDL(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ddl: %w", err)
	}
	var out []string
	for _, st := range strings.Split(string(b)+"\n", ";\n") {
		if st = strings.TrimSpace(st); st != "" {
			out = append(out, st)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ddl %s: no statements", path)
	}
	return out, nil
}

// openShardRouter opens a pool per --db and a router over them.
func openShardRouter(m *shard.Map, dbs dbFlags) (*shard.Router, func(), error) {
	var phys []shard.Physical
	var pools []*sql.DB
	closeAll := func() {
		for _, p := range pools {
			p.Close()
		}
	}
	for name, dsn := range dbs {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("--db %s: %w", name, err)
		}
		pools = append(pools, db)
		phys = append(phys, shard.Physical{Name: name, DB: db})
	}
	r, err := shard.New(shard.Config{Map: m, Physical: phys})
	if err != nil {
		closeAll()
		if errors.Is(err, shard.ErrBadConfig) {
			return nil, nil, usageErrorf("shard move: %v", err)
		}
		return nil, nil, err
	}
	return r, closeAll, nil
}
