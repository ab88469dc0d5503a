package respserver_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"scaleout/cache/cachetest"
	"scaleout/cache/respserver"
)

// start serves a new Server on a free loopback port until the test ends.
func start(t *testing.T, cfg respserver.Config) (*respserver.Server, string) {
	t.Helper()
	return cachetest.ServeEmbedded(t, cfg)
}

func client(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCommands(t *testing.T) {
	t.Parallel()
	_, addr := start(t, respserver.Config{})
	c := client(t, addr)
	ctx := context.Background()
	tests := []struct {
		args []any
		want any // a value, or an error wanted when wantErr
		err  bool
	}{
		{[]any{"ping"}, "PONG", false},
		{[]any{"echo", "hi"}, "hi", false},
		{[]any{"get", "a"}, redis.Nil, true},
		{[]any{"set", "a", "1"}, "OK", false},
		{[]any{"get", "a"}, "1", false},
		{[]any{"set", "a", "2", "nx"}, redis.Nil, true},
		{[]any{"set", "b", "2", "nx", "px", "60000"}, "OK", false},
		{[]any{"set", "c", "3", "xx"}, redis.Nil, true},
		{[]any{"set", "a", "9", "xx", "ex", "60"}, "OK", false},
		{[]any{"mget", "a", "b", "c"}, []any{"9", "2", nil}, false},
		{[]any{"exists", "a", "b", "c"}, int64(2), false},
		{[]any{"pttl", "c"}, int64(-2), false},
		{[]any{"del", "a", "c"}, int64(1), false},
		{[]any{"dbsize"}, int64(1), false},
		{[]any{"select", "0"}, "OK", false},
		{[]any{"set", "a", "1", "px", "abc"}, nil, true},
		{[]any{"set", "a", "1", "px", "-5"}, nil, true},
		{[]any{"set", "a", "1", "nx", "xx"}, nil, true},
		{[]any{"set", "a", "1", "px"}, nil, true},
		{[]any{"set", "a", "1", "bogus"}, nil, true},
		{[]any{"get"}, nil, true},
		{[]any{"select", "3"}, nil, true},
		{[]any{"hello", "3"}, nil, true},
		{[]any{"eval", "return 1", "0"}, nil, true},
	}
	for _, tt := range tests {
		got, err := c.Do(ctx, tt.args...).Result()
		if tt.err {
			if err == nil {
				t.Errorf("%v: got %v, want an error", tt.args, got)
			} else if want, ok := tt.want.(error); ok && !errors.Is(err, want) {
				t.Errorf("%v: err = %v, want %v", tt.args, err, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: err = %v", tt.args, err)
			continue
		}
		if w, ok := tt.want.([]any); ok {
			g, _ := got.([]any)
			if len(g) != len(w) || g[0] != w[0] || g[1] != w[1] || g[2] != w[2] {
				t.Errorf("%v: got %v, want %v", tt.args, got, w)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("%v: got %v (%T), want %v", tt.args, got, got, tt.want)
		}
	}
	if ttl, err := c.PTTL(ctx, "b").Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Errorf("PTTL b = %v, %v; want within (0, 1m]", ttl, err)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	_, addr := start(t, respserver.Config{})
	c := client(t, addr)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 50*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.Get(ctx, "k").Result()
		if errors.Is(err, redis.Nil) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("key with a 50ms TTL still there: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// NX succeeds over an expired key.
	if ok, err := c.SetNX(ctx, "k", "w", time.Minute).Result(); err != nil || !ok {
		t.Errorf("SETNX over expired key = %v, %v; want true", ok, err)
	}
}

func TestPubSubAndShutdown(t *testing.T) {
	t.Parallel()
	s, err := respserver.New(respserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	c := client(t, ln.Addr().String())
	sub := c.Subscribe(context.Background(), "ch")
	defer sub.Close()
	if _, err := sub.Receive(context.Background()); err != nil { // the subscription
		t.Fatal(err)
	}
	if n, err := c.Publish(context.Background(), "ch", "hello").Result(); err != nil || n != 1 {
		t.Fatalf("PUBLISH = %d, %v; want 1 receiver", n, err)
	}
	msg, err := sub.ReceiveMessage(context.Background())
	if err != nil || msg.Payload != "hello" {
		t.Fatalf("message = %v, %v; want hello", msg, err)
	}
	// A raw subscriber, to see its connection closed at shutdown.
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write([]byte("*2\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	_ = raw.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := raw.Read(buf); err != nil {
		t.Fatalf("read subscribe reply: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := raw.Read(buf); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("subscriber connection still open after shutdown")
		}
	}
}

func TestMemoryBounded(t *testing.T) {
	t.Parallel()
	s, addr := start(t, respserver.Config{MaxBytes: 64 << 10})
	c := client(t, addr)
	ctx := context.Background()
	big := make([]byte, 1000)
	for i := range 500 {
		if err := c.Set(ctx, "k"+string(rune('a'+i%26))+string(rune(i)), big, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.Len() > 70 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Len() > 70 || s.Evictions() == 0 {
		t.Errorf("keys = %d, evictions = %d; want <= 70 keys of 1 KB in 64 KiB, and evictions", s.Len(), s.Evictions())
	}
}
