package session_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"scaleout/session"
	"scaleout/session/cookiestore"
	"scaleout/session/memstore"
)

// clock is a settable time source shared by codec, store and manager.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func secret(b byte) []byte { return []byte(strings.Repeat(string(rune('a'+b)), 32)) }

// app is a test app: /login?user=U logs in, /logout logs out, /put?k=v puts,
// / prints "user=<id> keys=<keys>".
type app struct {
	m   *session.Manager
	srv *httptest.Server
}

func newApp(t *testing.T, cfg session.Config) *app {
	t.Helper()
	m, err := session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{m: m}
	a.srv = httptest.NewServer(m.Handler(http.HandlerFunc(a.serve)))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) serve(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	q := r.URL.Query()
	var err error
	switch r.URL.Path {
	case "/login":
		err = a.m.Login(r.Context(), s, q.Get("user"))
	case "/logout":
		err = a.m.Logout(r.Context(), s)
	case "/put":
		for k, v := range q {
			if err = s.Put(k, v[0]); err != nil {
				break
			}
		}
	case "/destroy":
		s.Destroy()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "user=%s keys=%s", s.UserID(), strings.Join(s.Keys(), ","))
}

// do sends a request with the given session cookie value ("" for none) and
// returns the body and the new cookie value, if one was set ("-" when the
// cookie was deleted).
func (a *app) do(t *testing.T, path, cookie string) (body, newCookie string, resp *http.Response) {
	t.Helper()
	req, _ := http.NewRequest("GET", a.srv.URL+path, nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "session", Value: cookie})
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d %s, want 200", path, resp.StatusCode, b)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "session" {
			newCookie = c.Value
			if c.MaxAge < 0 {
				newCookie = "-"
			}
		}
	}
	return string(b), newCookie, resp
}

type setup struct {
	name string
	cfg  func(*clock) session.Config
}

func setups(t *testing.T) []setup {
	codec := func(clk *clock, encrypt bool) session.Codec {
		c, err := cookiestore.New(cookiestore.Config{Keys: []cookiestore.Key{{ID: "k1", Secret: secret(1)}}, Encrypt: encrypt, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	gens := func(clk *clock) *memstore.Store { s, _ := memstore.New(memstore.Config{Now: clk.Now}); return s }
	return []setup{
		{"signed-cookie", func(clk *clock) session.Config {
			return session.Config{Codec: codec(clk, false), Generations: gens(clk), Now: clk.Now}
		}},
		{"encrypted-cookie", func(clk *clock) session.Config {
			return session.Config{Codec: codec(clk, true), Generations: gens(clk), Now: clk.Now}
		}},
		{"memstore", func(clk *clock) session.Config {
			st := gens(clk)
			return session.Config{Store: st, Generations: st, Now: clk.Now}
		}},
	}
}

func TestLifecycle(t *testing.T) {
	for _, su := range setups(t) {
		t.Run(su.name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{t: time.Unix(1_800_000_000, 0)}
			a := newApp(t, su.cfg(clk))

			body, c0, _ := a.do(t, "/put?color=blue", "")
			if c0 == "" || body != "user= keys=color" {
				t.Fatalf("put: body %q cookie %q", body, c0)
			}
			if body, _, _ = a.do(t, "/", c0); body != "user= keys=color" {
				t.Errorf("read back: %q", body)
			}
			_, c1, _ := a.do(t, "/login?user=ada", c0)
			if c1 == "" || c1 == c0 {
				t.Fatalf("login did not issue a new cookie: %q", c1)
			}
			if body, _, _ = a.do(t, "/", c1); body != "user=ada keys=color" {
				t.Errorf("after login: %q", body)
			}
			// A second device of the same user.
			_, other, _ := a.do(t, "/login?user=ada", "")
			_, gone, _ := a.do(t, "/logout", c1)
			if gone != "-" {
				t.Errorf("logout did not delete the cookie: %q", gone)
			}
			// Replaying the cookie from before logout, and the other
			// device's cookie, both give a fresh session.
			for _, c := range []string{c1, other} {
				if body, _, _ = a.do(t, "/", c); body != "user= keys=" {
					t.Errorf("cookie after logout still works: %q", body)
				}
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	for _, su := range setups(t) {
		t.Run(su.name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{t: time.Unix(1_800_000_000, 0)}
			cfg := su.cfg(clk)
			cfg.IdleTimeout, cfg.Lifetime = 10*time.Minute, time.Hour
			a := newApp(t, cfg)
			_, c, _ := a.do(t, "/put?a=1", "")
			// Requests every 9 minutes keep it alive until the lifetime ends.
			for i := range 6 {
				clk.Add(9 * time.Minute)
				body, nc, _ := a.do(t, "/", c)
				if body != "user= keys=a" {
					t.Fatalf("request %d at +%dm: %q, want the session", i, 9*(i+1), body)
				}
				if nc != "" {
					c = nc
				}
			}
			clk.Add(9 * time.Minute) // +63m: past the 1h lifetime
			if body, _, _ := a.do(t, "/", c); body != "user= keys=" {
				t.Errorf("after lifetime: %q, want a fresh session", body)
			}
			_, c, _ = a.do(t, "/put?b=1", "")
			clk.Add(11 * time.Minute)
			if body, _, _ := a.do(t, "/", c); body != "user= keys=" {
				t.Errorf("after idle timeout: %q, want a fresh session", body)
			}
		})
	}
}

func TestCookieFlags(t *testing.T) {
	st, _ := memstore.New(memstore.Config{})
	m, err := session.New(session.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Put("k", 1)
	}))
	tests := []struct {
		name       string
		remote     string
		proto      string
		wantSecure bool
	}{
		{"plain http", "192.0.2.1:1234", "", false},
		{"trusted balancer says https", "127.0.0.1:1234", "https", true},
		{"untrusted client says https", "192.0.2.1:1234", "https", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			cs := w.Result().Cookies()
			if len(cs) != 1 {
				t.Fatalf("got %d cookies, want 1", len(cs))
			}
			c := cs[0]
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
				t.Errorf("cookie %v: want HttpOnly, SameSite=Lax, Path=/", c)
			}
			if c.Secure != tc.wantSecure {
				t.Errorf("Secure = %v, want %v", c.Secure, tc.wantSecure)
			}
			if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, `no-cache="Set-Cookie"`) {
				t.Errorf("Cache-Control = %q, want no-cache=\"Set-Cookie\"", cc)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	st, _ := memstore.New(memstore.Config{})
	codec, _ := cookiestore.New(cookiestore.Config{Keys: []cookiestore.Key{{ID: "k", Secret: secret(0)}}})
	tests := []struct {
		name string
		cfg  session.Config
		want string
	}{
		{"neither", session.Config{}, "exactly one"},
		{"both", session.Config{Store: st, Codec: codec}, "exactly one"},
		{"bad name", session.Config{Store: st, CookieName: "a b"}, "CookieName"},
		{"negative idle", session.Config{Store: st, IdleTimeout: -1}, "negative"},
	}
	for _, tc := range tests {
		if _, err := session.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestStoreErrorIs500NotPanic(t *testing.T) {
	m, err := session.New(session.Config{Store: failingStore{}})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Put("k", 1)
		io.WriteString(w, "handler output")
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "handler output") {
		t.Errorf("got %d %q, want 500 without the handler's output", w.Code, w.Body.String())
	}
}

type failingStore struct{}

func (failingStore) Load(context.Context, string) (session.Entry, bool, error) {
	return session.Entry{}, false, nil
}
func (failingStore) Save(context.Context, string, []byte, time.Time, int64) error {
	return fmt.Errorf("disk on fire")
}
func (failingStore) Delete(context.Context, string) error { return nil }
