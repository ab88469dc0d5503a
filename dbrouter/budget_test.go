package dbrouter

import (
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name  string
		rate  float64
		burst int
		at    []time.Duration // offsets of successive requests
		want  []bool
	}{
		{"burst then refuse", 1, 2, []time.Duration{0, 0, 0}, []bool{true, true, false}},
		{"refills at rate", 10, 1, []time.Duration{0, 0, 50 * time.Millisecond, 100 * time.Millisecond}, []bool{true, false, false, true}},
		{"never above burst", 1000, 2, []time.Duration{0, 10 * time.Second, 10 * time.Second, 10 * time.Second}, []bool{true, true, true, false}},
		{"unlimited", -1, 1, []time.Duration{0, 0, 0, 0}, []bool{true, true, true, true}},
		{"clock going back refills nothing", 1, 1, []time.Duration{time.Second, 0, 0}, []bool{true, false, false}},
	}
	for _, tc := range tests {
		b := newBudget(tc.rate, tc.burst)
		for i, off := range tc.at {
			if got := b.allow(t0.Add(off)); got != tc.want[i] {
				t.Errorf("%s: request %d at +%v: allow = %v, want %v", tc.name, i, off, got, tc.want[i])
			}
		}
	}
}
