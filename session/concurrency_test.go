package session_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"scaleout/session"
	"scaleout/session/memstore"
)

// TestConcurrentSemantics checks the rules in the package doc with two
// requests of one session interleaved by hand: both load, then both save.
func TestConcurrentSemantics(t *testing.T) {
	tests := []struct {
		name     string
		first    func(*session.Session)
		second   func(*session.Session)
		wantKeys map[string]string // "" means absent
	}{
		{"different keys are merged",
			func(s *session.Session) { s.Put("a", "1") },
			func(s *session.Session) { s.Put("b", "2") },
			map[string]string{"a": "1", "b": "2", "base": "0"}},
		{"one key: the later save wins",
			func(s *session.Session) { s.Put("base", "first") },
			func(s *session.Session) { s.Put("base", "second") },
			map[string]string{"base": "second"}},
		{"a remove is replayed too",
			func(s *session.Session) { s.Put("a", "1") },
			func(s *session.Session) { s.Remove("base") },
			map[string]string{"a": "1", "base": ""}},
		{"destroy stays destroyed",
			func(s *session.Session) { s.Destroy() },
			func(s *session.Session) { s.Put("b", "2") },
			nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := memstore.New(memstore.Config{})
			m, err := session.New(session.Config{Store: st})
			if err != nil {
				t.Fatal(err)
			}
			// Start a session holding base=0.
			s0, _ := m.Load(httptest.NewRequest("GET", "/", nil))
			s0.Put("base", "0")
			w := httptest.NewRecorder()
			if err := m.Save(w, httptest.NewRequest("GET", "/", nil), s0); err != nil {
				t.Fatal(err)
			}
			cookie := w.Result().Cookies()[0]
			req := func() *http.Request {
				r := httptest.NewRequest("GET", "/", nil)
				r.AddCookie(cookie)
				return r
			}
			s1, _ := m.Load(req())
			s2, _ := m.Load(req())
			tc.first(s1)
			tc.second(s2)
			for _, s := range []*session.Session{s1, s2} {
				if err := m.Save(httptest.NewRecorder(), req(), s); err != nil {
					t.Fatal(err)
				}
			}
			got, _ := m.Load(req())
			if tc.wantKeys == nil {
				if keys := got.Keys(); len(keys) != 0 {
					t.Errorf("after destroy, the old cookie still has keys %v", keys)
				}
				return
			}
			for k, want := range tc.wantKeys {
				v, ok := session.Get[string](got, k)
				if want == "" && ok {
					t.Errorf("%s = %q, want absent", k, v)
				}
				if want != "" && v != want {
					t.Errorf("%s = %q (present %v), want %q", k, v, ok, want)
				}
			}
		})
	}
}
