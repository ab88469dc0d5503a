package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestBalanceConfigErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "listen: ':0'\npolicy: p2c\nbogus: 1\n", "line 3"},
		{"bad duration", "listen: ':0'\nidle_timeout: forever\n", "line 2"},
		{"bad type", "max_attempts: many\n", "line 1"},
		{"bad size", "max_header_bytes: 12 parsecs\n", "line 1"},
		{"unknown backend key", "backends:\n  - url: http://127.0.0.1:1\n    wieght: 2\n", "line 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cfg balanceConfig
			err := decodeYAML("test.yaml", []byte(tc.yaml), &cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func FuzzBalanceConfig(f *testing.F) {
	f.Add([]byte("listen: ':8080'\nbackends:\n  - url: http://127.0.0.1:8081\n    weight: 2\nsticky: true\n"))
	f.Add([]byte("idle_timeout: 10s\nmax_header_bytes: 64KiB\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var cfg balanceConfig
		if err := decodeYAML("fuzz.yaml", data, &cfg); err != nil {
			return
		}
		// Whatever parses must build or be refused with an error, never panic.
		cfg.Listen, cfg.Admin = "", ""
		cfg.SecretFile = "" // never write files where fuzzed input says
		cfg.CacheSize = min(cfg.CacheSize, 1<<20)
		buildBalancer(cfg, newDiscardLogger())
	})
}

func TestBalanceFlagsValidated(t *testing.T) {
	t.Parallel()
	cases := [][]string{
		{"--policy", "fastest"},
		{"--backend", "ftp://x:1"},
		{"--backend", "http://127.0.0.1:1=zero"},
		{"--max-header-bytes", "12 parsecs"},
		{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--max-attempts", "50"},
		{"stray"},
	}
	for _, args := range cases {
		var out bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &out}
		err := runBalance(context.Background(), env, args)
		if ExitCode(err) != 2 {
			t.Errorf("balance %q: got %v (exit %d), want a usage error", args, err, ExitCode(err))
		}
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"help", "balance"}, &out, &out); err != nil {
		t.Fatalf("help balance: %v", err)
	}
	for _, flag := range []string{"-listen", "-admin", "-backend", "-policy", "-sticky", "-secret-file", "-config", "-cache"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("help balance does not explain %s", flag)
		}
	}
}

// buildBinary builds scaleout once per test binary run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "scaleout-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "scaleout")
	cmd := exec.Command("go", "build", "-o", bin, "scaleout/cmd/scaleout")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startBinary runs the built scaleout with args and returns the process
// and a function that waits for it to exit.
func startBinary(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, out
}

// waitHTTP polls url until it answers or 30s pass.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBalanceBinaryEndToEnd(t *testing.T) {
	t.Parallel()
	var hits [2]int
	var mu sync.Mutex
	members := make([]*httptest.Server, 2)
	for i := range members {
		members[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits[i]++
			mu.Unlock()
			fmt.Fprintf(w, "member %d", i)
		}))
		defer members[i].Close()
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	conf := filepath.Join(dir, "scaleout.yaml")
	listen, admin := freeAddr(t), freeAddr(t)
	os.WriteFile(conf, []byte(fmt.Sprintf("listen: %q\nadmin: %q\npolicy: round-robin\nbackends:\n  - id: one\n    url: %s\n", listen, admin, members[0].URL)), 0o600)
	cmd, out := startBinary(t, "balance", "--config", conf, "--sticky", "--secret-file", secret, "--log-level", "warn")
	waitHTTP(t, "http://"+admin+"/api/backends")

	if fi, err := os.Stat(secret); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file: %v, mode %v; want created with 0600", err, fi.Mode().Perm())
	}
	resp, err := http.Get("http://" + listen + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "member 0" || !strings.HasPrefix(resp.Header.Get("Set-Cookie"), "scaleout_sticky=") {
		t.Fatalf("got %q with Set-Cookie %q, want member 0 and a sticky cookie", body, resp.Header.Get("Set-Cookie"))
	}

	// Add a member through the admin API, then list.
	add, err := http.Post("http://"+admin+"/api/backends", "application/json", strings.NewReader(fmt.Sprintf(`{"id":"two","url":%q}`, members[1].URL)))
	if err != nil || add.StatusCode != 201 {
		t.Fatalf("add member: %v %v", add, err)
	}
	add.Body.Close()
	bad, _ := http.Post("http://"+admin+"/api/backends", "application/json", strings.NewReader(`{"url":"ftp://x"}`))
	if bad.StatusCode != 400 {
		t.Errorf("bad member: got %d, want 400", bad.StatusCode)
	}
	bad.Body.Close()
	var list []map[string]any
	r, _ := http.Get("http://" + admin + "/api/backends")
	json.NewDecoder(r.Body).Decode(&list)
	r.Body.Close()
	if len(list) != 2 {
		t.Fatalf("GET /api/backends listed %d members, want 2: %v", len(list), list)
	}
	for i := 0; i < 10; i++ {
		resp, err := http.Get("http://" + listen + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	mu.Lock()
	if hits[1] != 5 {
		t.Errorf("after the admin add, round robin sent %d of 10 to the new member, want 5", hits[1])
	}
	mu.Unlock()

	// Metrics are Prometheus text.
	m, _ := http.Get("http://" + admin + "/metrics")
	mb, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if !strings.Contains(string(mb), `scaleout_request_duration_seconds_count{member="one",class="2xx"}`) {
		t.Errorf("metrics lack the per-member latency histogram:\n%.500s", mb)
	}

	// SIGHUP with a config that drops member "one": it leaves, "two" (added
	// through the API) stays.
	os.WriteFile(conf, []byte(fmt.Sprintf("listen: %q\nadmin: %q\npolicy: p2c\n", listen, admin)), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var list []map[string]any
		r, err := http.Get("http://" + admin + "/api/backends")
		if err == nil {
			json.NewDecoder(r.Body).Decode(&list)
			r.Body.Close()
		}
		if len(list) == 1 && list[0]["id"] == "two" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP the pool is %v, want only member two\n%s", list, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// SIGTERM: a clean exit.
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
	}
}

func TestBalanceBadConfigFileExits2(t *testing.T) {
	t.Parallel()
	conf := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(conf, []byte("listen: ':0'\npolcy: p2c\n"), 0o600)
	cmd, out := startBinary(t, "balance", "--config", conf)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("got %v, want exit status 2", err)
	}
	if s := out.String(); !strings.Contains(s, "line 2") || !strings.Contains(s, "polcy") {
		t.Errorf("message %q does not name line 2 and the key", s)
	}
}
