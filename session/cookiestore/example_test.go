package cookiestore_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"scaleout/session"
	"scaleout/session/cookiestore"
)

// A whole session in a signed cookie: keys rotate by putting the new key
// first and keeping the old one until its cookies have expired.
func Example() {
	codec, err := cookiestore.New(cookiestore.Config{
		Keys: []cookiestore.Key{
			{ID: "2026b", Secret: []byte("0123456789abcdef0123456789abcdef")},
			{ID: "2026a", Secret: []byte("an older secret, still verifying")},
		},
	})
	if err != nil {
		panic(err)
	}
	m, err := session.New(session.Config{Codec: codec})
	if err != nil {
		panic(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, _ := session.Get[int](s, "visits")
		s.Put("visits", n+1)
		fmt.Fprintf(w, "visit %d", n+1)
	}))

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(w.Result().Cookies()[0])
	w2 := httptest.NewRecorder()
	h.ServeHTTP(w2, r)
	fmt.Println(w.Body.String(), "then", w2.Body.String())
	// Output: visit 1 then visit 2
}
