package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// pool is a balancer binary in front of app binaries that join it by
// heartbeat.
type pool struct {
	front, admin string
	apps         map[string]*exec.Cmd
	logs         []*syncBuffer
}

func startPool(t *testing.T, n int, interval string) *pool {
	t.Helper()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("a-heartbeat-token-for-tests\n"), 0o600)
	p := &pool{front: freeAddr(t), admin: freeAddr(t), apps: map[string]*exec.Cmd{}}
	_, blog := startBinary(t, "balance", "--listen", p.front, "--admin", p.admin, "--heartbeat-token-file", token, "--log-level", "info", "--slow-start", "-1s")
	p.logs = append(p.logs, blog)
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range p.logs {
				t.Logf("process output:\n%s", l.String())
			}
		}
	})
	waitHTTP(t, "http://"+p.admin+"/api/backends")
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("app-%d", i)
		cmd, alog := startBinary(t, "app", "--listen", "127.0.0.1:0", "--id", id, "--data", filepath.Join(dir, "data"),
			"--balancer", "http://"+p.admin, "--token-file", token, "--heartbeat-interval", interval, "--log-level", "warn")
		p.apps[id] = cmd
		p.logs = append(p.logs, alog)
	}
	p.waitMembers(t, func(ms map[string]string) bool { return len(ms) == n && countState(ms, "ready") == n })
	return p
}

// members returns the pool's members and their states.
func (p *pool) members(t *testing.T) map[string]string {
	resp, err := http.Get("http://" + p.admin + "/api/backends")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var list []struct {
		ID, State    string
		LeaseExpired bool `json:"lease_expired"`
		Ejected      bool
	}
	json.NewDecoder(resp.Body).Decode(&list)
	out := map[string]string{}
	for _, m := range list {
		out[m.ID] = m.State
		if m.State == "ready" && (m.LeaseExpired || m.Ejected) {
			out[m.ID] = "out"
		}
	}
	return out
}

func (p *pool) waitMembers(t *testing.T, ok func(map[string]string) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 60*time.Second {
		if ok(p.members(t)) {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the pool never reached the expected state: %v", p.members(t))
	return 0
}

func countState(ms map[string]string, state string) int {
	n := 0
	for _, s := range ms {
		if s == state {
			n++
		}
	}
	return n
}

// load runs requests from 8 workers until stop is closed or n were sent,
// counting failures.
func load(t *testing.T, n int, stop <-chan struct{}, do func(c *http.Client, i int) error) (sent, failed *atomic.Int64, errs chan error, wait func()) {
	sent, failed = new(atomic.Int64), new(atomic.Int64)
	errs = make(chan error, 16)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var wg sync.WaitGroup
	deadline := time.Now().Add(90 * time.Second)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				i := sent.Add(1)
				if i > int64(n) {
					return
				}
				if err := do(c, int(i)); err != nil {
					failed.Add(1)
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	return sent, failed, errs, wg.Wait
}

func getOK(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return nil
}

func TestHeartbeatsRetireAStoppedMember(t *testing.T) {
	t.Parallel()
	p := startPool(t, 3, "250ms")
	stop := make(chan struct{})
	sent, failed, errs, wait := load(t, 100000, stop, func(c *http.Client, i int) error {
		return getOK(c, "http://"+p.front+"/whoami")
	})
	for sent.Load() < 300 {
		time.Sleep(5 * time.Millisecond)
	}
	victim := p.apps["app-2"]
	victim.Process.Signal(syscall.SIGSTOP) // silent: no goodbye, sockets stay open
	defer victim.Process.Signal(syscall.SIGCONT)
	out := p.waitMembers(t, func(ms map[string]string) bool { return ms["app-2"] != "" && ms["app-2"] != "ready" })
	before := sent.Load()
	for sent.Load() < before+300 {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wait()
	t.Logf("a SIGSTOPped member left rotation %v after the signal (heartbeats every 250ms); %d requests, %d failed", out, sent.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d requests failed while a member stopped; first: %v", failed.Load(), <-errs)
	}
}

func TestDrainedMemberStopsWithoutFailures(t *testing.T) {
	t.Parallel()
	p := startPool(t, 2, "250ms")
	stop := make(chan struct{})
	sent, failed, errs, wait := load(t, 100000, stop, func(c *http.Client, i int) error {
		if i%3 == 0 {
			resp, err := c.PostForm("http://"+p.front+"/flights/1/book", url.Values{"name": {fmt.Sprintf("p%d", i)}})
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				return fmt.Errorf("POST book: status %d", resp.StatusCode)
			}
			return nil
		}
		return getOK(c, "http://"+p.front+"/whoami")
	})
	for sent.Load() < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := http.Post("http://"+p.admin+"/api/backends/app-1/drain", "", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("drain: %v %v", resp, err)
	}
	p.apps["app-1"].Process.Signal(syscall.SIGTERM)
	if err := p.apps["app-1"].Wait(); err != nil {
		t.Errorf("app-1 exit after SIGTERM: %v", err)
	}
	p.waitMembers(t, func(ms map[string]string) bool { _, ok := ms["app-1"]; return !ok })
	before := sent.Load()
	for sent.Load() < before+200 {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wait()
	t.Logf("%d requests (a third of them POSTs), %d failed", sent.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d requests failed while a drained member stopped; first: %v", failed.Load(), <-errs)
	}
	if !strings.Contains(fmt.Sprint(p.members(t)), "app-2") {
		t.Errorf("app-2 is gone too: %v", p.members(t))
	}
}
