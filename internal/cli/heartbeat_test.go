package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"scaleout/health"
)

// recordingPool is a health.Pool that keeps the states it is given.
type recordingPool struct {
	mu     sync.Mutex
	states map[string]health.MemberState
}

func (p *recordingPool) Upsert(m health.Member) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.states[m.ID]; !ok {
		p.states[m.ID] = health.StateReady
	}
	return nil
}

func (p *recordingPool) SetState(id string, s health.MemberState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.states[id] = s
	return nil
}

func (p *recordingPool) Remove(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.states, id)
	return nil
}

func (p *recordingPool) state(id string) health.MemberState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.states[id]
}

// heartbeatBalancer is a loopback server taking heartbeats with token
// "cli-token-0123456789", as a balancer's admin listener does.
func heartbeatBalancer(t *testing.T) (*httptest.Server, *health.Registry, *recordingPool) {
	t.Helper()
	pool := &recordingPool{states: map[string]health.MemberState{}}
	reg, err := health.NewRegistry(health.RegistryConfig{Pool: pool, Token: "cli-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+health.HeartbeatPath, reg.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, reg, pool
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHeartbeatBadFlags(t *testing.T) {
	t.Parallel()
	lb, reg, _ := heartbeatBalancer(t)
	token := writeFile(t, "token", "cli-token-0123456789\n")
	empty := writeFile(t, "empty", " \n")
	spaced := writeFile(t, "spaced", "two words in a token\n")
	short := writeFile(t, "short", "cli-token\n")
	base := func(extra ...string) []string {
		return append([]string{"heartbeat", "--balancer", lb.URL, "--self", "http://127.0.0.1:8081", "--token-file", token}, extra...)
	}
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"no balancer", []string{"heartbeat", "--self", "http://127.0.0.1:8081", "--token-file", token}, "--balancer is required"},
		{"no self", []string{"heartbeat", "--balancer", lb.URL, "--token-file", token}, "--self is required"},
		{"no token file", []string{"heartbeat", "--balancer", lb.URL, "--self", "http://127.0.0.1:8081"}, "--token-file is required"},
		{"missing token file", base("--token-file", filepath.Join(t.TempDir(), "nope")), "does not exist"},
		{"empty token file", base("--token-file", empty), "is empty"},
		{"token with a space", base("--token-file", spaced), "space"},
		{"short token", base("--token-file", short), "shorter than 16"},
		{"self not http", base("--self", "ftp://127.0.0.1:8081"), "scheme"},
		{"self without port", base("--self", "http://127.0.0.1"), "host:port"},
		{"balancer not a URL", []string{"heartbeat", "--balancer", "127.0.0.1:9090", "--self", "http://127.0.0.1:8081", "--token-file", token}, "balancer URL"},
		{"odd id", base("--id", "a/b"), "id"},
		{"interval too short", base("--interval", "1ms"), "interval"},
		{"negative interval", base("--interval", "-1s"), "--interval"},
		{"negative capacity", base("--capacity", "-4"), "capacity"},
		{"stray argument", base("extra"), "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := runCLI(t, tt.args...)
			if ExitCode(err) != 2 {
				t.Fatalf("exit code %d (err %v), want 2", ExitCode(err), err)
			}
			if !strings.Contains(err.Error()+stderr, tt.msg) {
				t.Errorf("error %q, stderr %q: want it to name %q", err, stderr, tt.msg)
			}
		})
	}
	if n := reg.Stats().Heartbeats; n != 0 {
		t.Errorf("%d heartbeats reached the balancer from bad command lines, want 0", n)
	}
}

func TestHeartbeatRegistersThenLeaves(t *testing.T) {
	t.Parallel()
	lb1, reg1, pool1 := heartbeatBalancer(t)
	lb2, reg2, pool2 := heartbeatBalancer(t)
	token := writeFile(t, "token", "cli-token-0123456789\n")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"heartbeat", "--balancer", lb1.URL, "--balancer", lb2.URL + "/",
			"--self", "http://127.0.0.1:8081", "--id", "legacy-1", "--token-file", token,
			"--interval", "50ms", "--capacity", "8"}, &bytes.Buffer{}, &stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for pool1.state("legacy-1") != health.StateReady || pool2.state("legacy-1") != health.StateReady {
		if time.Now().After(deadline) {
			t.Fatalf("member not registered with both balancers; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if l := reg1.Leases(); len(l) != 1 || l[0].Capacity != 8 || l[0].Interval != 50*time.Millisecond {
		t.Errorf("leases %+v: want legacy-1 with capacity 8, interval 50ms", l)
	}
	cancel() // SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("heartbeat returned %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("heartbeat did not return after SIGTERM")
	}
	for i, reg := range []*health.Registry{reg1, reg2} {
		if st := reg.Stats(); st.Leaves != 1 || len(reg.Leases()) != 0 {
			t.Errorf("balancer %d: stats %+v: want the member to have left", i+1, st)
		}
	}
}

func TestHeartbeatHelp(t *testing.T) {
	t.Parallel()
	out, _, err := runCLI(t, "heartbeat", "-h")
	if err != nil || !strings.Contains(out, "--token-file") && !strings.Contains(out, "-token-file") {
		t.Errorf("heartbeat -h: err %v, output %q: want usage listing -token-file", err, out)
	}
}
