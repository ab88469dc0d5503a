package memstore_test

import (
	"testing"

	"scaleout/session"
	"scaleout/session/memstore"
	"scaleout/session/sessiontest"
)

func TestConformance(t *testing.T) {
	sessiontest.TestStore(t, func(t *testing.T) session.Store {
		s, err := memstore.New(memstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func BenchmarkRoundTrip(b *testing.B) {
	s, _ := memstore.New(memstore.Config{})
	sessiontest.BenchmarkStore(b, s)
}
