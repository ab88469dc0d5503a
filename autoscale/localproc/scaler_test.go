package localproc

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"scaleout/autoscale"
)

// runningSource reports every running child as an idle ready member, as a
// balancer would once their heartbeats arrived.
type runningSource struct{ p *Provider }

func (s runningSource) Observe(ctx context.Context) (autoscale.Observation, error) {
	var obs autoscale.Observation
	for _, id := range s.p.Running() {
		obs.Members = append(obs.Members, autoscale.Member{ID: id, Ready: true})
	}
	return obs, nil
}

func (p *Provider) pids() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[string]int{}
	for id, pr := range p.procs {
		m[id] = pr.cmd.Process.Pid
	}
	return m
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	if runtime.GOOS != "linux" {
		return true // no /proc to tell a zombie from a live process
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err != nil && !os.IsNotExist(err)
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(after, "Z")
}

// poll checks cond every 20ms until it holds or 60s pass.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestScalerWithProcesses runs the Scaler over real children: it keeps Min
// running, replaces one that crashes, and stops all when Run's ctx ends.
func TestScalerWithProcesses(t *testing.T) {
	t.Parallel()
	p := newProvider(t, "serve", nil)
	s, err := autoscale.New(autoscale.Config{Min: 2, Max: 3, Interval: 200 * time.Millisecond,
		Source: runningSource{p}, Provider: p})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	poll(t, "two children running", func() bool { return len(p.Running()) == 2 && s.Stats().Starting == 0 })
	first := p.pids()
	var victim string
	for id := range first {
		victim = id
	}
	for _, in := range s.Stats().Instances {
		if in.ID == victim {
			get(t, in.URL+"/exit?code=2")
		}
	}
	poll(t, "crashed child replaced", func() bool {
		ids := p.pids()
		_, old := ids[victim]
		return !old && len(ids) == 2 && s.Stats().Counts[autoscale.CodeReplaced] == 1
	})
	all := p.pids()
	for id, pid := range first {
		all[id] = pid
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if got := p.Running(); len(got) != 0 {
		t.Errorf("after Run: %v still running", got)
	}
	for id, pid := range all {
		if alive(pid) {
			t.Errorf("child %s (pid %d) alive after Run returned", id, pid)
		}
	}
}

// TestNoOrphanWhenParentKilled kills a parent holding a child with SIGKILL:
// the kernel must take the child down too.
func TestNoOrphanWhenParentKilled(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the kernel's parent-death signal is Linux-only")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	parent := exec.Command(exe)
	parent.Env = append(os.Environ(), childEnv+"=parent")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Wait()
	defer parent.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "pid "))
	if err != nil || perr != nil {
		t.Fatalf("parent said %q (%v): want pid N", line, err)
	}
	if !alive(pid) {
		t.Fatalf("child %d not alive while its parent runs", pid)
	}
	parent.Process.Kill()
	poll(t, "child gone after its parent was killed", func() bool { return !alive(pid) })
}

// parentMain is the "parent" mode: start one child, print its pid, wait to
// be killed.
func parentMain() int {
	exe, _ := os.Executable()
	p, err := New(Config{Command: []string{exe, "--listen", "127.0.0.1:{port}", "--id", "{id}"}, Env: []string{childEnv + "=serve"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := p.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, pid := range p.pids() {
		fmt.Printf("pid %d\n", pid)
	}
	time.Sleep(10 * time.Minute)
	return 0
}
