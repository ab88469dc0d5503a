package session_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"scaleout/session"
	"scaleout/session/cookiestore"
	"scaleout/session/memstore"
)

// BenchmarkHandler measures the middleware on one request that reads one
// value and writes another: load, handler, save, Set-Cookie.
func BenchmarkHandler(b *testing.B) {
	codec, _ := cookiestore.New(cookiestore.Config{Keys: []cookiestore.Key{{ID: "k1", Secret: make([]byte, 32)}}})
	mem, _ := memstore.New(memstore.Config{})
	for _, tc := range []struct {
		name string
		cfg  session.Config
	}{
		{"signed-cookie", session.Config{Codec: codec}},
		{"memstore", session.Config{Store: mem}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m, err := session.New(tc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := session.FromContext(r.Context())
				n, _ := session.Get[int](s, "n")
				s.Put("n", n+1)
			}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			cookie := w.Result().Cookies()[0]
			r := httptest.NewRequest("GET", "/", nil)
			r.AddCookie(cookie)
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
