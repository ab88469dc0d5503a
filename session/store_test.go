package session_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"scaleout/session"
	"scaleout/session/memstore"
)

func TestRunCleanup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, _ := memstore.New(memstore.Config{})
		ctx, cancel := context.WithCancel(context.Background())
		st.Save(ctx, "dead", []byte(`{}`), time.Now().Add(time.Minute), 0)
		st.Save(ctx, "alive", []byte(`{}`), time.Now().Add(time.Hour), 0)
		done := make(chan error, 1)
		go func() { done <- session.RunCleanup(ctx, st, 10*time.Minute, nil) }()

		// Expired entries are gone within two intervals (the first run is
		// jittered by up to one).
		time.Sleep(2 * time.Minute) // "dead" has expired, not yet cleaned
		synctest.Wait()
		time.Sleep(20 * time.Minute)
		synctest.Wait()
		if n, _ := st.DeleteExpired(ctx); n != 0 {
			t.Errorf("%d expired entries left after two cleanup intervals, want 0", n)
		}
		if _, ok, _ := st.Load(ctx, "alive"); !ok {
			t.Errorf("cleanup removed a live entry")
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("RunCleanup returned %v, want context.Canceled", err)
		}
	})
}
