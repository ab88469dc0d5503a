package session_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"scaleout/session"
	"scaleout/session/memstore"
)

// Server-side sessions: the cookie carries a random token, the store keeps
// the data. Login renews the token; Logout ends the session.
func Example() {
	st, _ := memstore.New(memstore.Config{})
	m, err := session.New(session.Config{Store: st, Generations: st})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if err := m.Login(r.Context(), s, "ada"); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.Put("theme", "dark")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		theme, _ := session.Get[string](s, "theme")
		fmt.Fprintf(w, "user %q theme %q", s.UserID(), theme)
	})
	h := m.Handler(mux)

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/login", nil))
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(w.Result().Cookies()[0])
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Println(w.Body.String())
	// Output: user "ada" theme "dark"
}

// Log a user out everywhere, for example after a password change: every
// session of the user, on every device, is refused from the next request.
func ExampleManager_RevokeUser() {
	st, _ := memstore.New(memstore.Config{})
	m, _ := session.New(session.Config{Store: st, Generations: st})
	err := m.RevokeUser(context.Background(), "ada")
	fmt.Println(err)
	// Output: <nil>
}
