package session_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"scaleout/internal/testserver"
	"scaleout/session"
	"scaleout/session/cookiestore"
	"scaleout/session/pgstore"
	"scaleout/session/redisstore"
	"scaleout/session/sqlitestore"
)

// buildScaleout builds the scaleout binary once per test run.
var buildScaleout = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "scaleout-session-e2e")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "scaleout")
	if out, err := exec.Command("go", "build", "-o", bin, "scaleout/cmd/scaleout").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// backing makes, for app server i, a session config whose state is shared
// with the other app servers through one real engine: each app server gets
// its own client and store object, as separate processes would.
type backing struct {
	name string
	// setup starts the engine and returns a per-app-server config maker.
	setup func(t *testing.T) func(i int) session.Config
}

func backings() []backing {
	return []backing{
		{"signed-cookie+sqlite-generations", func(t *testing.T) func(int) session.Config {
			path := filepath.Join(t.TempDir(), "gens.db")
			return func(int) session.Config {
				codec, err := cookiestore.New(cookiestore.Config{Keys: []cookiestore.Key{{ID: "k1", Secret: []byte("a shared secret of at least 32 bytes")}}})
				if err != nil {
					t.Fatal(err)
				}
				return session.Config{Codec: codec, Generations: sqliteStore(t, path)}
			}
		}},
		{"sqlite", func(t *testing.T) func(int) session.Config {
			path := filepath.Join(t.TempDir(), "sessions.db")
			return func(int) session.Config {
				st := sqliteStore(t, path)
				return session.Config{Store: st, Generations: st}
			}
		}},
		{"redis", func(t *testing.T) func(int) session.Config {
			srv := testserver.Redis(t)
			return func(int) session.Config {
				c := redis.NewClient(&redis.Options{Addr: srv.Addr})
				t.Cleanup(func() { c.Close() })
				st, err := redisstore.New(redisstore.Config{Client: c})
				if err != nil {
					t.Fatal(err)
				}
				return session.Config{Store: st, Generations: st}
			}
		}},
		{"postgres", func(t *testing.T) func(int) session.Config {
			pg := testserver.Postgres(t)
			return func(int) session.Config {
				pool, err := pgxpool.New(context.Background(), pg.DSN("postgres"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pool.Close)
				st, err := pgstore.New(context.Background(), pgstore.Config{Pool: pool})
				if err != nil {
					t.Fatal(err)
				}
				return session.Config{Store: st, Generations: st}
			}
		}},
	}
}

func sqliteStore(t *testing.T, path string) *sqlitestore.Store {
	db, err := sqlitestore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := sqlitestore.New(context.Background(), sqlitestore.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestTwoAppServersBehindBalancer runs two app servers behind the real
// `scaleout balance --policy round-robin` (no stickiness): a login on one is
// seen by the other, and a logout on either ends it on both.
func TestTwoAppServersBehindBalancer(t *testing.T) {
	bin, err := buildScaleout()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backings() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			mk := b.setup(t)
			var urls []string
			for i := range 2 {
				urls = append(urls, startApp(t, i, mk(i)))
			}
			listen := balance(t, bin, urls)
			jar, _ := cookiejar.New(nil)
			client := &http.Client{Jar: jar, Timeout: time.Minute}
			get := func(path string) string {
				t.Helper()
				resp, err := client.Get("http://" + listen + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
				}
				return string(body)
			}

			login := get("/login?user=ada")
			seen := map[string]bool{}
			for range 4 {
				got := get("/whoami")
				server, user, _ := strings.Cut(got, " ")
				seen[server] = true
				if user != "user=ada" {
					t.Errorf("after login on %q, %s", login, got)
				}
			}
			if len(seen) != 2 {
				t.Errorf("round robin reached app servers %v, want both", seen)
			}
			get("/logout")
			for range 2 {
				if got := get("/whoami"); !strings.HasSuffix(got, " user=") {
					t.Errorf("after logout: %s, want no user", got)
				}
			}
		})
	}
}

// startApp starts app server i with a session manager on cfg.
func startApp(t *testing.T, i int, cfg session.Config) string {
	m, err := session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		var err error
		switch r.URL.Path {
		case "/login":
			err = m.Login(r.Context(), s, r.URL.Query().Get("user"))
		case "/logout":
			err = m.Logout(r.Context(), s)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "app%d user=%s", i, s.UserID())
	})))
	t.Cleanup(srv.Close)
	return srv.URL
}

// balance starts `scaleout balance` in front of urls and returns its
// listen address once it answers.
func balance(t *testing.T, bin string, urls []string) string {
	listen, admin := freeAddr(t), freeAddr(t)
	args := []string{"balance", "--listen", listen, "--admin", admin, "--policy", "round-robin", "--log-level", "warn"}
	for _, u := range urls {
		args = append(args, "--backend", u)
	}
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	var mu sync.Mutex
	cmd.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + admin + "/api/backends")
		if err == nil {
			resp.Body.Close()
			return listen
		}
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("scaleout balance never answered: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
