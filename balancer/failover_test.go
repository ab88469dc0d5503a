package balancer

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runLoad sends requests from workers goroutines until n requests were sent
// or the time limit passes, calling do for each; it returns the failures.
func runLoad(workers, n int, limit time.Duration, do func(i int) error) (sent int64, failures []error) {
	var next atomic.Int64
	var mu sync.Mutex
	deadline := time.Now().Add(limit)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if err := do(int(i)); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return min(next.Load(), int64(n)), failures
}

// startProcessPool runs a balancer in front of three member processes
// that log the POSTs they receive to log.
func startProcessPool(t *testing.T, log string) ([]*memberProcess, *testPool) {
	var urls []string
	var procs []*memberProcess
	for _, id := range []string{"a", "b", "c"} {
		m := startMemberProcess(t, id, log)
		procs = append(procs, m)
		urls = append(urls, m.url)
	}
	return procs, startBalancer(t, Config{}, urls...)
}

func TestKilledMemberCausesNoFailedIdempotentRequests(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "posts")
	procs, p := startProcessPool(t, log)
	client := newClient()
	var done atomic.Int64
	go func() {
		for done.Load() < 200 {
			time.Sleep(5 * time.Millisecond)
		}
		procs[1].kill()
	}()
	sent, failures := runLoad(8, 2000, 60*time.Second, func(i int) error {
		defer done.Add(1)
		resp, err := client.Get(p.url + "/?sleep=2ms")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed after a member was killed; first: %v", len(failures), sent, failures[0])
	}
	if done.Load() < 200 {
		t.Fatalf("only %d requests ran; the member was never killed", done.Load())
	}
	st := p.b.Stats()
	t.Logf("%d requests, %d retries, %d ejections", sent, st.Retries, st.Ejections)
}

func TestPostNeverDeliveredTwice(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "posts")
	procs, p := startProcessPool(t, log)
	client := newClient()
	var done atomic.Int64
	go func() {
		for done.Load() < 100 {
			time.Sleep(5 * time.Millisecond)
		}
		procs[0].kill() // with POSTs in flight on it (each sleeps 20ms)
	}()
	var okMu sync.Mutex
	ok := map[string]bool{}
	sent, _ := runLoad(8, 600, 60*time.Second, func(i int) error {
		defer done.Add(1)
		id := fmt.Sprintf("req-%d", i)
		req, _ := http.NewRequest("POST", p.url+"/?sleep=20ms", strings.NewReader("order"))
		req.Header.Set("X-Request-Id", id)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			okMu.Lock()
			ok[id] = true
			okMu.Unlock()
		}
		return nil
	})
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	delivered := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		id, _, _ := strings.Cut(line, " ")
		delivered[id]++
	}
	for id, n := range delivered {
		if n > 1 {
			t.Errorf("POST %s delivered %d times", id, n)
		}
	}
	for id := range ok {
		if delivered[id] != 1 {
			t.Errorf("POST %s answered 200 but delivered %d times", id, delivered[id])
		}
	}
	if len(ok) < int(sent)/2 {
		t.Errorf("only %d of %d POSTs succeeded", len(ok), sent)
	}
	t.Logf("%d POSTs sent, %d answered 200, %d delivered", sent, len(ok), len(delivered))
}

// TestStaleKeepAliveRetriedOnSameMember: a single member that closes idle
// keep-alive connections (as servers with short idle timeouts do) must not
// turn a GET into an error when the balancer reuses one just as it closes.
func TestStaleKeepAliveRetriedOnSameMember(t *testing.T) {
	t.Parallel()
	m := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	m.Config.IdleTimeout = 50 * time.Millisecond
	m.Start()
	defer m.Close()
	p := startBalancer(t, Config{}, m.URL)
	client := newClient()
	for i := 0; i < 20; i++ {
		if resp, _ := get(t, client, p.url+"/"); resp.StatusCode != 200 {
			t.Fatalf("request %d after the member closed its idle connection: status %d", i, resp.StatusCode)
		}
		time.Sleep(time.Duration(40+i%3*10) * time.Millisecond) // around the member's idle timeout
	}
}
