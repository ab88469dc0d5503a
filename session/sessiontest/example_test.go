package sessiontest_test

import (
	"testing"

	"scaleout/session"
	"scaleout/session/memstore"
	"scaleout/session/sessiontest"
)

// A store's test runs the conformance suite against the real engine.
func Example() {
	_ = func(t *testing.T) {
		sessiontest.TestStore(t, func(t *testing.T) session.Store {
			st, err := memstore.New(memstore.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return st
		})
	}
}
