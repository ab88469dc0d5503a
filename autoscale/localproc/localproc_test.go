package localproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"scaleout/autoscale"
)

// The test binary doubles as the child: with LOCALPROC_CHILD set, TestMain
// runs child() instead of the tests.
const childEnv = "LOCALPROC_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "parent" {
		os.Exit(parentMain())
	}
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// child serves HTTP on --listen, answering its --id; GET /exit?code=N
// makes it exit with N. Modes: "serve"; "stubborn" ignores SIGTERM; "fail"
// exits 3 before listening.
func child(mode string, args []string) int {
	var listen, id string
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "--listen":
			listen = args[i+1]
		case "--id":
			id = args[i+1]
		}
	}
	fmt.Printf("child %s starting on %s\n", id, listen)
	if mode == "fail" {
		fmt.Fprintln(os.Stderr, "child: cannot open the database")
		return 3
	}
	term := make(chan os.Signal, 1)
	if mode == "stubborn" {
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("child ignoring SIGTERM")
	} else {
		signal.Notify(term, syscall.SIGTERM)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	exit := make(chan int, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, id) })
	mux.HandleFunc("GET /exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		exit <- code
	})
	go http.Serve(l, mux)
	select {
	case <-term:
		fmt.Println("child got SIGTERM")
		return 0
	case code := <-exit:
		fmt.Fprintf(os.Stderr, "child exiting with %d\n", code)
		return code
	}
}

func newProvider(t *testing.T, mode string, f func(*Config)) *Provider {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Command: []string{exe, "--listen", "127.0.0.1:{port}", "--id", "{id}"},
		Env:     []string{childEnv + "=" + mode},
		Grace:   5 * time.Second,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if f != nil {
		f(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.StopAll(context.Background()) })
	return p
}

func get(t *testing.T, url string) (string, error) {
	t.Helper()
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// waitClosed waits, with a generous deadline for a loaded machine, for ch.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: not within 60s", what)
	}
}

func TestStartServeStop(t *testing.T) {
	t.Parallel()
	p := newProvider(t, "serve", nil)
	var insts []autoscale.Instance
	for range 2 {
		in, err := p.Start(t.Context())
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		insts = append(insts, in)
	}
	if insts[0].ID == insts[1].ID || insts[0].URL == insts[1].URL {
		t.Fatalf("two instances share an id or URL: %+v", insts)
	}
	for _, in := range insts {
		if !strings.HasPrefix(in.URL, "http://127.0.0.1:") || !strings.HasPrefix(in.ID, "app-") {
			t.Errorf("instance %+v: want id app-... and URL http://127.0.0.1:PORT", in)
		}
		body, err := get(t, in.URL)
		if err != nil || body != in.ID {
			t.Errorf("GET %s = %q, %v; want its id %q", in.URL, body, err, in.ID)
		}
	}
	if err := p.Stop(t.Context(), insts[0].ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitClosed(t, insts[0].Exited, "Exited after Stop")
	if _, err := get(t, insts[0].URL); err == nil {
		t.Errorf("GET %s after Stop succeeded, want a refused connection", insts[0].URL)
	}
	logs, total, ok := p.Logs(insts[0].ID)
	if !ok || !strings.Contains(string(logs), "starting on") || !strings.Contains(string(logs), "got SIGTERM") || total != int64(len(logs)) {
		t.Errorf("Logs after stop = %q (total %d, ok %v), want its start and SIGTERM lines", logs, total, ok)
	}
	if got := p.Running(); len(got) != 1 || got[0] != insts[1].ID {
		t.Errorf("Running = %v, want [%s]", got, insts[1].ID)
	}
	if err := p.Stop(t.Context(), insts[0].ID); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
}

func TestCrashIsReported(t *testing.T) {
	t.Parallel()
	p := newProvider(t, "serve", nil)
	in, err := p.Start(t.Context())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	get(t, in.URL+"/exit?code=7") // the child may exit before answering
	waitClosed(t, in.Exited, "Exited after the child crashed")
	logs, _, _ := p.Logs(in.ID)
	if !strings.Contains(string(logs), "exiting with 7") {
		t.Errorf("Logs = %q, want the crash line", logs)
	}
	if len(p.Running()) != 0 {
		t.Errorf("Running = %v after crash, want none", p.Running())
	}
}

func TestStubbornChildIsKilled(t *testing.T) {
	t.Parallel()
	p := newProvider(t, "stubborn", func(c *Config) { c.Grace = 300 * time.Millisecond })
	in, err := p.Start(t.Context())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := p.Stop(t.Context(), in.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-in.Exited:
	default:
		t.Fatalf("Stop returned before the process was reaped")
	}
	p.mu.Lock()
	var ws syscall.WaitStatus
	for _, pr := range p.exited {
		if pr.id == in.ID {
			ws = pr.cmd.ProcessState.Sys().(syscall.WaitStatus)
		}
	}
	p.mu.Unlock()
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("child ended with %v, want killed by SIGKILL after ignoring SIGTERM", ws)
	}
}

func TestStartFailures(t *testing.T) {
	t.Parallel()
	p := newProvider(t, "fail", nil)
	_, err := p.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "exited before listening") || !strings.Contains(err.Error(), "cannot open the database") {
		t.Errorf("Start of a failing child = %v, want an error with its output", err)
	}
	missing := newProvider(t, "serve", func(c *Config) { c.Command = []string{"/nonexistent/scaleout-app"} })
	if _, err := missing.Start(t.Context()); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Start of a missing program = %v, want os.ErrNotExist", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "command is empty"},
		{Config{Command: []string{"app", "--listen", "127.0.0.1:{prot}"}}, "unknown placeholder {prot}"},
		{Config{Command: []string{"app"}, Host: "10.0.0.1"}, "not a loopback"},
		{Config{Command: []string{"app"}, Grace: -1}, "negative"},
	} {
		_, err := New(tt.cfg)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want ErrConfig naming %q", tt.cfg, err, tt.want)
		}
	}
}

func TestRingKeepsTail(t *testing.T) {
	t.Parallel()
	r := newRing(8)
	for _, s := range []string{"abc", "defgh", "ij", "0123456789AB", "xy"} {
		r.Write([]byte(s))
	}
	b, total := r.Bytes()
	if string(b) != "6789ABxy" || total != 24 {
		t.Errorf("ring = %q, %d; want %q, 24", b, total, "6789ABxy")
	}
}
