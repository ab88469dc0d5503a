package health

import (
	"encoding/json"
	"errors"
	"testing"
)

func FuzzParseHeartbeat(f *testing.F) {
	for _, s := range []string{
		goodBody,
		`{"id":"a","url":"https://[::1]:443/","state":"leaving","in_flight":0,"capacity":0,"interval_ms":50,"weight":1000,"seq":1}`,
		`{"id":"a","url":"http://h:1","state":"draining","in_flight":1e3,"capacity":0,"interval_ms":60000}`,
		`{"ID":"a","URL":"http://h:1?x","state":"ready"}`,
		`{"id":"\u0000","url":"http://%zz:1"}`,
		`[]`, `"x"`, `{"id":"a"} {}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeartbeat(data)
		if err != nil {
			if !errors.Is(err, ErrBadHeartbeat) {
				t.Fatalf("error %v does not wrap ErrBadHeartbeat", err)
			}
			if h != (Heartbeat{}) {
				t.Fatalf("refused heartbeat came back non-zero: %+v", h)
			}
			return
		}
		// What was accepted is valid, and survives a round trip.
		if ValidateID(h.ID) != nil || ValidateURL(h.URL) != nil || h.InFlight < 0 || h.Capacity < 0 || h.Weight < 0 || h.Weight > MaxWeight {
			t.Fatalf("accepted an invalid heartbeat: %+v", h)
		}
		if iv := h.Interval(); iv < defaultMinInterval || iv > defaultMaxInterval {
			t.Fatalf("accepted interval %v", iv)
		}
		out, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := ParseHeartbeat(out)
		if err != nil || h2 != h {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", h, out, h2, err)
		}
	})
}
