package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// processesMentioning counts running processes whose command line contains
// s (this package's tests give each stack its own data directory).
func processesMentioning(s string) int {
	n := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), s) {
			n++
		}
	}
	return n
}

func TestUpScalesOutAndInWithoutFailures(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	front, admin := freeAddr(t), freeAddr(t)
	cmd, out := startBinary(t, "up", "--listen", front, "--admin", admin, "--data", data,
		"--min", "1", "--max", "4", "--target", "2", "--interval", "500ms", "--scale-down-window", "3s",
		"--heartbeat", "100ms", "--work", "3ms", "--cache=false", "--log-level", "warn")
	waitHTTP(t, "http://"+admin+"/api/backends")
	ready := func() int {
		resp, err := http.Get("http://" + admin + "/api/backends")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		var ms []struct {
			State        string
			Ejected      bool
			LeaseExpired bool `json:"lease_expired"`
		}
		json.NewDecoder(resp.Body).Decode(&ms)
		n := 0
		for _, m := range ms {
			if m.State == "ready" && !m.Ejected && !m.LeaseExpired {
				n++
			}
		}
		return n
	}
	waitFor := func(what string, ok func() bool) time.Duration {
		start := time.Now()
		for time.Since(start) < 90*time.Second {
			if ok() {
				return time.Since(start)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: never happened (ready members %d)\n%s", what, ready(), out.String())
		return 0
	}
	waitFor("min pool ready", func() bool { return ready() == 1 })

	// Step from idle to a load of 16 concurrent requests, each costing
	// 3ms of CPU: several members' worth at a target of 2 in flight each.
	stop := make(chan struct{})
	sent, failed, errs, wait := load(t, 1_000_000, stop, func(c *http.Client, i int) error {
		return getOK(c, "http://"+front+"/whoami")
	})
	grew := waitFor("scale-out to 4", func() bool { return ready() >= 4 })
	close(stop)
	wait()
	shrank := waitFor("scale-in to 1", func() bool { return ready() == 1 })
	t.Logf("step load: pool reached 4 members %v after the step; back at 1 member %v after the load stopped (window 3s); %d requests, %d failed",
		grew, shrank, sent.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d requests failed while the pool scaled; first: %v", failed.Load(), <-errs)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("scaleout up exit: %v\n%s", err, out.String())
	}
	if n := processesMentioning(data); n != 0 {
		t.Errorf("%d app processes left behind after scaleout up stopped", n)
	}
}
