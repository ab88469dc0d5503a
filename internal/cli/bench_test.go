package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer answers every request with 200 and counts them.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	err = Run(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestBenchBadFlagsSendNothing(t *testing.T) {
	t.Parallel()
	srv, hits := countingServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/"
	ln.Close()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantMsg  string
	}{
		{"negative rate", []string{srv.URL, "--rate", "-5"}, 2, "--rate -5"},
		{"zero rate", []string{srv.URL, "--rate", "0"}, 2, "--rate 0"},
		{"unparsable duration", []string{srv.URL, "--duration", "ten seconds"}, 2, "invalid value"},
		{"negative duration", []string{srv.URL, "--duration", "-1s"}, 2, "--duration -1s"},
		{"negative requests", []string{srv.URL, "--requests", "-1"}, 2, "--requests -1"},
		{"negative connections", []string{srv.URL, "--connections", "-3"}, 2, "--connections -3"},
		{"no url", []string{"--rate", "10"}, 2, "no URL"},
		{"two urls", []string{srv.URL, srv.URL}, 2, "one URL expected"},
		{"bad scheme", []string{"ftp://127.0.0.1/"}, 2, "scheme must be http or https"},
		{"bad header", []string{srv.URL, "-H", "no colon"}, 2, "Name: value"},
		{"bad slo", []string{srv.URL, "--find-capacity", "--slo", "0s"}, 2, "--slo"},
		{"missing targets file", []string{"--targets", filepath.Join(t.TempDir(), "none")}, 2, "--targets"},
		{"unreachable", []string{closed, "--requests", "5"}, 1, "unreachable"},
		{"unreachable search", []string{closed, "--find-capacity"}, 1, "unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, stderr, err := runCLI(t, append([]string{"bench"}, tt.args...)...)
			if got := ExitCode(err); got != tt.wantCode {
				t.Fatalf("exit code: got %d, want %d (err %v)", got, tt.wantCode, err)
			}
			if msg := stderr + err.Error(); !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q does not mention %q", msg, tt.wantMsg)
			}
		})
	}
	t.Cleanup(func() {
		if n := hits.Load(); n != 0 {
			t.Errorf("bad flags sent %d requests, want none", n)
		}
	})
}

func TestBenchJSON(t *testing.T) {
	t.Parallel()
	srv, hits := countingServer(t)
	tests := []struct {
		name        string
		args        []string
		wantReqs    int64
		wantMode    string
		wantOffered float64
	}{
		{"closed loop", []string{srv.URL, "--connections", "4", "--requests", "100"}, 100, "closed", 0},
		// Flags may come before the URL too.
		{"open loop", []string{"--rate", "200", "--duration", "1s", srv.URL}, 200, "open", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			stdout, _, err := runCLI(t, append([]string{"bench", "--json", "--progress", "0"}, tt.args...)...)
			if err != nil {
				t.Fatalf("bench: %v", err)
			}
			var got struct {
				Mode        string             `json:"mode"`
				Requests    int64              `json:"requests"`
				Errors      *int64             `json:"errors"`
				OfferedRPS  float64            `json:"offered_rps"`
				AchievedRPS float64            `json:"achieved_rps"`
				Latency     map[string]float64 `json:"latency_ms"`
			}
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
			}
			if got.Mode != tt.wantMode || got.Requests != tt.wantReqs || got.OfferedRPS != tt.wantOffered {
				t.Errorf("got mode %s, %d requests, offered %v; want %s, %d, %v", got.Mode, got.Requests, got.OfferedRPS, tt.wantMode, tt.wantReqs, tt.wantOffered)
			}
			if got.Errors == nil || *got.Errors != 0 || got.AchievedRPS <= 0 {
				t.Errorf("errors %v achieved %v: want 0 and positive", got.Errors, got.AchievedRPS)
			}
			for _, k := range []string{"min", "mean", "p50", "p90", "p99", "p999", "max"} {
				if v, ok := got.Latency[k]; !ok || v <= 0 {
					t.Errorf("latency_ms.%s: got %v (present %v), want a positive figure", k, v, ok)
				}
			}
			if n := hits.Load() - before; n != tt.wantReqs {
				t.Errorf("server saw %d requests, want %d", n, tt.wantReqs)
			}
		})
	}
}

func TestBenchTextReportAndProgress(t *testing.T) {
	t.Parallel()
	srv, _ := countingServer(t)
	targets := filepath.Join(t.TempDir(), "targets")
	file := "GET " + srv.URL + "/a\n\nPOST " + srv.URL + "/b\nContent-Type: text/plain\n> hi\n"
	if err := os.WriteFile(targets, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runCLI(t, "bench", "--targets", targets, "--rate", "100", "--duration", "1200ms", "--progress", "300ms")
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	for _, want := range []string{"open loop, offered 100.0 req/s", "Requests:     120", "Status codes: 200 120", "p99.9", "Latency histogram:", "Started late:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}
	// Not a terminal: plain lines, no carriage returns or escapes.
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) < 2 || strings.ContainsAny(stderr, "\r\x1b") || !strings.Contains(lines[0], "req/s") {
		t.Errorf("progress on a non-terminal: got %q, want plain periodic lines", stderr)
	}
}

func TestBenchFindCapacity(t *testing.T) {
	t.Parallel()
	srv, _ := countingServer(t)
	stdout, _, err := runCLI(t, "bench", srv.URL, "--find-capacity", "--start-rate", "50", "--max-rate", "100",
		"--step-duration", "1s", "--slo", "2s", "--json", "--progress", "0")
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	var got struct {
		Knee  float64 `json:"knee_rps"`
		AtMax bool    `json:"at_max"`
		Steps []struct {
			Verdict string `json:"verdict"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	// A fast server passes both steps (50 and 100 req/s) and the search
	// stops at its maximum, unless a stall of the shared test machine
	// failed a step: then it bisects below 100.
	if got.Knee <= 0 || got.Knee > 100 || len(got.Steps) < 2 || got.AtMax != (got.Knee == 100) {
		t.Errorf("got knee %v at_max %v with %d steps, want a knee in (0, 100], at_max only at 100, and at least 2 steps", got.Knee, got.AtMax, len(got.Steps))
	}
	for i, st := range got.Steps {
		switch st.Verdict {
		case "pass", "short", "slo", "errors":
		default:
			t.Errorf("step %d: verdict %q is not one of pass, short, slo, errors", i+1, st.Verdict)
		}
	}
}
