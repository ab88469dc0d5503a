// Package sessiontest is the conformance suite that every session.Store
// passes: run TestStore from each store's tests, against the real engine.
package sessiontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"scaleout/session"
)

// TestStore runs the conformance suite against stores made by newStore. Each
// call of newStore may return the same store: the suite uses fresh ids. A
// store that also implements session.Cleaner or session.Generations is
// checked for those too.
func TestStore(t *testing.T, newStore func(t *testing.T) session.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, session.Store)
	}{
		{"LoadMissing", testLoadMissing},
		{"SaveLoadDelete", testSaveLoadDelete},
		{"CompareAndSet", testCompareAndSet},
		{"Expired", testExpired},
		{"NoLostUpdates", testNoLostUpdates},
		{"Cleaner", testCleaner},
		{"Generations", testGenerations},
		{"ManagerConcurrentRequests", testManagerConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// seq makes ids unique across runs that share a store.
var seq atomic.Int64

func newID(t *testing.T) string {
	return session.HashToken(fmt.Sprintf("%s-%d-%d", t.Name(), time.Now().UnixNano(), seq.Add(1)))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func testLoadMissing(t *testing.T, st session.Store) {
	e, ok, err := st.Load(ctx(t), newID(t))
	if err != nil || ok {
		t.Fatalf("Load(missing) = %+v, %v, %v; want not found, nil error", e, ok, err)
	}
	if err := st.Delete(ctx(t), newID(t)); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
}

func testSaveLoadDelete(t *testing.T, st session.Store) {
	c, id := ctx(t), newID(t)
	data := []byte(`{"c":1,"s":1,"v":{"k":"v\u00e9"}}`)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := st.Save(c, id, bytes.Clone(data), exp, 0); err != nil {
		t.Fatalf("Save new: %v", err)
	}
	e, ok, err := st.Load(c, id)
	if err != nil || !ok {
		t.Fatalf("Load = _, %v, %v; want found", ok, err)
	}
	if !bytes.Equal(e.Data, data) || e.Version != 1 {
		t.Errorf("Load = data %q version %d; want %q version 1", e.Data, e.Version, data)
	}
	if d := e.Expiry.Sub(exp); d < -time.Second || d > time.Second {
		t.Errorf("expiry = %v, want %v", e.Expiry, exp)
	}
	if err := st.Delete(c, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, ok, err := st.Load(c, id); ok || err != nil {
		t.Errorf("Load after Delete = found %v, err %v; want not found", ok, err)
	}
}

func testCompareAndSet(t *testing.T, st session.Store) {
	c, id := ctx(t), newID(t)
	exp := time.Now().Add(time.Hour)
	steps := []struct {
		prev    int64
		wantErr error
	}{
		{0, nil},                 // create
		{0, session.ErrConflict}, // create again: someone else did
		{1, nil},                 // update from version 1
		{1, session.ErrConflict}, // stale update
		{5, session.ErrConflict}, // version from the future
		{2, nil},                 // current again
	}
	for i, s := range steps {
		err := st.Save(c, id, []byte(fmt.Sprintf(`{"step":%d}`, i)), exp, s.prev)
		if !errors.Is(err, s.wantErr) || (s.wantErr == nil && err != nil) {
			t.Fatalf("step %d: Save(prev=%d) = %v, want %v", i, s.prev, err, s.wantErr)
		}
	}
	e, _, err := st.Load(c, id)
	if err != nil || e.Version != 3 || string(e.Data) != `{"step":5}` {
		t.Errorf("Load = version %d data %q err %v; want version 3 data of step 5", e.Version, e.Data, err)
	}
}

func testExpired(t *testing.T, st session.Store) {
	c, id := ctx(t), newID(t)
	if err := st.Save(c, id, []byte(`{}`), time.Now().Add(-time.Second), 0); err != nil {
		t.Fatalf("Save expired: %v", err)
	}
	if _, ok, err := st.Load(c, id); ok || err != nil {
		t.Errorf("Load(expired) = found %v, err %v; want not found", ok, err)
	}
	// An expired entry counts as absent: creating over it succeeds.
	if err := st.Save(c, id, []byte(`{"new":1}`), time.Now().Add(time.Hour), 0); err != nil {
		t.Fatalf("Save over expired: %v", err)
	}
	if e, ok, _ := st.Load(c, id); !ok || e.Version != 1 {
		t.Errorf("Load after re-create = found %v version %d; want found version 1", ok, e.Version)
	}
}

// testNoLostUpdates has goroutines increment one counter with load, then
// compare-and-set, retrying on conflict: the total must be exact.
func testNoLostUpdates(t *testing.T, st session.Store) {
	c, id := ctx(t), newID(t)
	const workers, each = 4, 10
	exp := time.Now().Add(time.Hour)
	if err := st.Save(c, id, []byte("0"), exp, 0); err != nil {
		t.Fatalf("Save: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range each {
				if err := increment(c, st, id, exp); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	e, _, err := st.Load(c, id)
	if want := fmt.Sprint(workers * each); err != nil || string(e.Data) != want {
		t.Errorf("counter = %q (err %v), want %s", e.Data, err, want)
	}
}

func increment(c context.Context, st session.Store, id string, exp time.Time) error {
	for attempt := 0; attempt < 1000; attempt++ {
		e, ok, err := st.Load(c, id)
		if err != nil || !ok {
			return fmt.Errorf("load: found %v, %v", ok, err)
		}
		var n int
		fmt.Sscan(string(e.Data), &n)
		err = st.Save(c, id, []byte(fmt.Sprint(n+1)), exp, e.Version)
		if err == nil {
			return nil
		}
		if !errors.Is(err, session.ErrConflict) {
			return fmt.Errorf("save: %w", err)
		}
	}
	return errors.New("increment: too many conflicts")
}

func testCleaner(t *testing.T, st session.Store) {
	cl, ok := st.(session.Cleaner)
	if !ok {
		t.Logf("%T is not a session.Cleaner: its engine expires entries", st)
		return
	}
	c, dead, alive := ctx(t), newID(t), newID(t)
	if err := st.Save(c, dead, []byte(`{}`), time.Now().Add(-time.Minute), 0); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(c, alive, []byte(`{}`), time.Now().Add(time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	n, err := cl.DeleteExpired(c)
	if err != nil || n < 1 {
		t.Errorf("DeleteExpired = %d, %v; want at least 1, nil", n, err)
	}
	if _, ok, _ := st.Load(c, alive); !ok {
		t.Errorf("DeleteExpired removed a live entry")
	}
}

func testGenerations(t *testing.T, st session.Store) {
	g, ok := st.(session.Generations)
	if !ok {
		t.Logf("%T is not a session.Generations", st)
		return
	}
	c := ctx(t)
	u1, u2 := newID(t), newID(t)
	if n, err := g.Generation(c, u1); n != 0 || err != nil {
		t.Errorf("Generation(new user) = %d, %v; want 0, nil", n, err)
	}
	for want := int64(1); want <= 3; want++ {
		if n, err := g.Bump(c, u1); n != want || err != nil {
			t.Errorf("Bump #%d = %d, %v; want %d", want, n, err, want)
		}
	}
	if n, _ := g.Generation(c, u1); n != 3 {
		t.Errorf("Generation after 3 bumps = %d, want 3", n)
	}
	if n, _ := g.Generation(c, u2); n != 0 {
		t.Errorf("other user's generation = %d, want 0", n)
	}
}

// testManagerConcurrent sends concurrent requests of one session, each
// putting its own key, through a Manager on st: every key must survive.
func testManagerConcurrent(t *testing.T, st session.Store) {
	m, err := session.New(session.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if k := r.URL.Query().Get("put"); k != "" {
			if err := s.Put(k, true); err != nil {
				t.Error(err)
			}
		}
		fmt.Fprint(w, strings.Join(s.Keys(), ","))
	})))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: time.Minute}
	get := func(q string) (string, error) {
		resp, err := client.Get(srv.URL + "/?" + q)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, err = fmt.Fprint(&b, readAll(resp))
		return b.String(), err
	}
	if _, err := get("put=start"); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := get(fmt.Sprintf("put=k%d", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := get("")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if !strings.Contains(","+got+",", fmt.Sprintf(",k%d,", i)) {
			t.Errorf("after %d concurrent puts, keys = %q: k%d was lost", n, got, i)
		}
	}
}

func readAll(resp *http.Response) string {
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

// BenchmarkStore measures one request's round trip on st: Load, then Save
// of a small session (about 100 bytes), as a request that changed it does.
func BenchmarkStore(b *testing.B, st session.Store) {
	ctx := context.Background()
	id := session.HashToken(fmt.Sprint("bench-", time.Now().UnixNano()))
	data := []byte(`{"c":1800000000,"s":1800000000,"u":"42","g":1,"v":{"user_id":42,"cart":["a","b"],"theme":"dark"}}`)
	exp := time.Now().Add(time.Hour)
	if err := st.Save(ctx, id, data, exp, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e, ok, err := st.Load(ctx, id)
		if err != nil || !ok {
			b.Fatalf("load: %v %v", ok, err)
		}
		if err := st.Save(ctx, id, e.Data, exp, e.Version); err != nil {
			b.Fatalf("save: %v", err)
		}
	}
}
