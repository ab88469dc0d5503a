package respserver

import (
	"bytes"
	"testing"
)

// FuzzParseSet: SET's options come from any client; parsing never panics
// and never yields a negative TTL or both NX and XX.
func FuzzParseSet(f *testing.F) {
	f.Add([]byte("px 100 nx"))
	f.Add([]byte("ex 9999999999999999999"))
	f.Add([]byte("xx px"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, msg := parseSet(bytes.Fields(b))
		if msg == "" && (o.ttl < 0 || (o.nx && o.xx)) {
			t.Fatalf("parseSet(%q) = %+v, accepted", b, o)
		}
	})
}
