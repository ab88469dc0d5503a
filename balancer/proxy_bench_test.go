package balancer

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkProxyKeepAlive measures the proxy's request path end to end
// over loopback: one keep-alive client connection, a small GET, a small
// answer from a raw member that does no work, so the proxy's own cost
// shows. Compare allocs/op and ns/op before and after a change.
func BenchmarkProxyKeepAlive(b *testing.B) {
	member := startRawMember(b)
	p := startBalancer(b, Config{}, "http://"+member)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReader(c)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// startRawMember serves a fixed small response on every request read from
// a keep-alive connection, with almost no cost of its own.
func startRawMember(b testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	body := "hello"
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					head, err := readHeadFrom(br, 64<<10)
					if err != nil {
						return
					}
					br.Discard(len(head))
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkProxyParallel is BenchmarkProxyKeepAlive with one keep-alive
// client connection per goroutine (GOMAXPROCS x -cpu), for profiling the
// request path under concurrency.
func BenchmarkProxyParallel(b *testing.B) {
	member := startRawMember(b)
	p := startBalancer(b, Config{}, "http://"+member)
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			head, err := readHeadFrom(br, 64<<10)
			if err != nil {
				b.Error(err)
				return
			}
			br.Discard(len(head) + 5) // the member's fixed 5-byte body
		}
	})
}
