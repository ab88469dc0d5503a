package balancer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary double as an app server process, so tests
// can kill a real process (SIGKILL) in the middle of a load.
func TestMain(m *testing.M) {
	if os.Getenv("BALANCER_TEST_MEMBER") != "" {
		runMemberProcess()
		return
	}
	os.Exit(m.Run())
}

// runMemberProcess serves on a free loopback port, printing it first.
// GET answers its id; POST appends the request's X-Request-Id to the file
// in BALANCER_TEST_LOG, so tests can count deliveries across processes.
// A "sleep" query parameter delays the answer.
func runMemberProcess() {
	id := os.Getenv("BALANCER_TEST_MEMBER")
	logf, err := os.OpenFile(os.Getenv("BALANCER_TEST_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Method == "POST" {
			fmt.Fprintf(logf, "%s %s\n", r.Header.Get("X-Request-Id"), id)
		}
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			time.Sleep(d)
		}
		io.WriteString(w, id)
	}))
}

// memberProcess is an app server running in a child process.
type memberProcess struct {
	cmd *exec.Cmd
	url string
}

func startMemberProcess(t testing.TB, id, logPath string) *memberProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BALANCER_TEST_MEMBER="+id, "BALANCER_TEST_LOG="+logPath)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("member process %s: %v", id, err)
	}
	return &memberProcess{cmd: cmd, url: "http://" + strings.TrimSpace(addr)}
}

func (m *memberProcess) kill() {
	m.cmd.Process.Kill() // SIGKILL: no goodbye
}
