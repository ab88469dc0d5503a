package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"scaleout/session"
	"scaleout/session/sessiontest"
	"scaleout/session/sqlitestore"
)

func open(t testing.TB, path string) *sqlitestore.Store {
	t.Helper()
	db, err := sqlitestore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := sqlitestore.New(context.Background(), sqlitestore.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	t.Parallel()
	st := open(t, filepath.Join(t.TempDir(), "sessions.db"))
	sessiontest.TestStore(t, func(*testing.T) session.Store { return st })
}

// TestTwoProcesses runs two child processes of this test binary that
// increment one session's counter through the same file with
// compare-and-set: no increment may be lost.
func TestTwoProcesses(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	st := open(t, path)
	ctx := context.Background()
	id := session.HashToken("shared")
	if err := st.Save(ctx, id, []byte("0"), time.Now().Add(time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	const procs, each = 2, 25
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperIncrement$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SQLITESTORE_HELPER="+path, "SQLITESTORE_N="+strconv.Itoa(each))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("helper %d: %v\n%s", i, err, out)
			}
		})
	}
	wg.Wait()
	e, _, err := st.Load(ctx, id)
	if want := fmt.Sprint(procs * each); err != nil || string(e.Data) != want {
		t.Errorf("counter = %q (err %v), want %s", e.Data, err, want)
	}
}

// TestHelperIncrement is the child process of TestTwoProcesses.
func TestHelperIncrement(t *testing.T) {
	path := os.Getenv("SQLITESTORE_HELPER")
	if path == "" {
		return // not a helper run: nothing to do
	}
	n, _ := strconv.Atoi(os.Getenv("SQLITESTORE_N"))
	st := open(t, path)
	ctx, id := context.Background(), session.HashToken("shared")
	for range n {
		for {
			e, ok, err := st.Load(ctx, id)
			if err != nil || !ok {
				t.Fatalf("load: %v %v", ok, err)
			}
			v, _ := strconv.Atoi(string(e.Data))
			err = st.Save(ctx, id, []byte(strconv.Itoa(v+1)), e.Expiry, e.Version)
			if err == nil {
				break
			}
			if !errors.Is(err, session.ErrConflict) {
				t.Fatalf("save: %v", err)
			}
		}
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := sqlitestore.New(context.Background(), sqlitestore.Config{}); err == nil {
		t.Error("New without DB succeeded")
	}
	db, _ := sqlitestore.Open(filepath.Join(t.TempDir(), "x.db"))
	defer db.Close()
	if _, err := sqlitestore.New(context.Background(), sqlitestore.Config{DB: db, Table: "x; DROP"}); err == nil {
		t.Error("New with a bad table name succeeded")
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	st := open(b, filepath.Join(b.TempDir(), "bench.db"))
	sessiontest.BenchmarkStore(b, st)
}
