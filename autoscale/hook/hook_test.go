package hook

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scaleout/autoscale"
)

// script is a hook that keeps its servers in a file beside itself, as an
// inventory would. FAIL_ADD makes "add" fail; OUTPUT replaces its line.
const script = `#!/bin/sh
set -e
dir=$(dirname "$0")
case "$1" in
add)
	[ -n "$FAIL_ADD" ] && { echo "quota exceeded in region test-1" >&2; exit 1; }
	[ -n "$SLOW" ] && exec sleep 30
	n=$(( $(cat "$dir/count" 2>/dev/null || echo 0) + 1 ))
	echo $n > "$dir/count"
	echo "web-$n" >> "$dir/servers"
	echo "provisioning web-$n" >&2
	echo "booting..."
	if [ -n "$OUTPUT" ]; then echo "$OUTPUT"; else echo "web-$n http://127.0.0.1:$((9000 + n))"; fi
	;;
remove)
	grep -qx "$2" "$dir/servers" || { echo "no server $2" >&2; exit 1; }
	grep -vx "$2" "$dir/servers" > "$dir/servers.new" || true
	mv "$dir/servers.new" "$dir/servers"
	;;
*)
	echo "usage: $0 add | remove ID" >&2; exit 2
	;;
esac
`

func newHook(t *testing.T, env ...string) (*Provider, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Command: []string{"/bin/sh", path}, Env: env, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return p, dir
}

func servers(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "servers"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestAddRemove(t *testing.T) {
	t.Parallel()
	p, dir := newHook(t)
	a, err := p.Start(t.Context())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	b, err := p.Start(t.Context())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if a.ID != "web-1" || a.URL != "http://127.0.0.1:9001" || b.ID != "web-2" || a.Exited != nil {
		t.Errorf("Start gave %+v and %+v, want web-1 at http://127.0.0.1:9001 and web-2, Exited nil", a, b)
	}
	if got := servers(t, dir); got != "web-1\nweb-2" {
		t.Errorf("inventory = %q, want web-1 and web-2", got)
	}
	if err := p.Stop(t.Context(), "web-1"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := servers(t, dir); got != "web-2" {
		t.Errorf("inventory after remove = %q, want web-2", got)
	}
	// An id it did not add (or already removed) never reaches the hook.
	if err := p.Stop(t.Context(), "web-1"); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
}

func TestAddFailures(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  []string
		want string
		is   error
	}{
		{"hook fails", []string{"FAIL_ADD=1"}, "quota exceeded in region test-1", nil},
		{"no URL", []string{"OUTPUT=web-9"}, "has 1 fields", ErrBadOutput},
		{"bad id", []string{"OUTPUT=web/9 http://127.0.0.1:1"}, `byte 3 is '/'`, ErrBadOutput},
		{"bad URL", []string{"OUTPUT=web-9 ftp://host:1"}, "want http(s)://host", ErrBadOutput},
		{"URL with path", []string{"OUTPUT=web-9 http://host:1/app"}, "no path", ErrBadOutput},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, _ := newHook(t, tt.env...)
			_, err := p.Start(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Start = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestAddTimesOut(t *testing.T) {
	t.Parallel()
	p, _ := newHook(t, "SLOW=1")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := p.Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start of a slow hook = %v, want context.DeadlineExceeded", err)
	}
}

func TestRemoveFailure(t *testing.T) {
	t.Parallel()
	p, dir := newHook(t)
	a, err := p.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "servers"), nil, 0o644) // someone removed it by hand
	if err := p.Stop(t.Context(), a.ID); err == nil || !strings.Contains(err.Error(), "no server web-1") {
		t.Errorf("Stop = %v, want the hook's stderr", err)
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{{}, {Command: []string{""}}, {Command: []string{"x"}, Timeout: -1}} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
}

func TestParseAdd(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		out, id, url string
		ok           bool
	}{
		{"web-1 http://10.0.0.5:8081\n", "web-1", "http://10.0.0.5:8081", true},
		{"log line\nmore\n  a.b_c:d-1   https://h.example/  \n\n", "a.b_c:d-1", "https://h.example", true},
		{"", "", "", false},
		{"\n\n", "", "", false},
		{"web-1 http://h:1 extra", "", "", false},
		{"web-1 http://user@h:1", "", "", false},
		{"web-1 http://h:1/?q=1", "", "", false},
		{"web-1 http://:80", "", "", false},
		{strings.Repeat("a", 129) + " http://h:1", "", "", false},
	} {
		id, u, err := parseAdd([]byte(tt.out))
		if (err == nil) != tt.ok || id != tt.id || u != tt.url {
			t.Errorf("parseAdd(%q) = %q, %q, %v; want %q, %q, ok %v", tt.out, id, u, err, tt.id, tt.url, tt.ok)
		}
	}
}

func FuzzParseAdd(f *testing.F) {
	f.Add([]byte("web-1 http://127.0.0.1:9001\n"))
	f.Add([]byte("x\n\ny https://[::1]:8/"))
	f.Fuzz(func(t *testing.T, out []byte) {
		id, u, err := parseAdd(out)
		if err != nil {
			if !errors.Is(err, ErrBadOutput) {
				t.Fatalf("parseAdd error %v is not ErrBadOutput", err)
			}
			return
		}
		if checkID(id) != nil || id == "" || !strings.HasPrefix(u, "http") || strings.ContainsAny(u, " \n") {
			t.Fatalf("parseAdd(%q) accepted id %q url %q", out, id, u)
		}
	})
}

// TestScalerWithHook runs a Scaler over the hook: concurrent starts are
// serialized, so the script's unlocked counter gives unique ids, and Run's
// end removes every server it added.
func TestScalerWithHook(t *testing.T) {
	t.Parallel()
	p, dir := newHook(t)
	src := autoscale.SourceFunc(func(ctx context.Context) (autoscale.Observation, error) {
		return autoscale.Observation{}, nil // no member joined: the size holds at Min
	})
	s, err := autoscale.New(autoscale.Config{Min: 4, Max: 4, Interval: 100 * time.Millisecond, Source: src, Provider: p})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for deadline := time.Now().Add(time.Minute); s.Stats().Starting > 0 || len(s.Stats().Instances) < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("4 servers not added within 1 min: %+v", s.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := servers(t, dir); got != "web-1\nweb-2\nweb-3\nweb-4" {
		t.Errorf("inventory = %q, want web-1 to web-4", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if got := servers(t, dir); got != "" {
		t.Errorf("inventory after Run = %q, want empty", got)
	}
}
