package balancer

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
)

// HTTP/2 from clients: a connection that opens with the HTTP/2 preface
// (prior knowledge, "h2c") is handed to net/http's HTTP/2 server, whose
// handler forwards through the same pool transport (and shared cache) as
// the HTTP/1.1 cache path. The fast path stays HTTP/1.1: members speak
// HTTP/1.1 either way, and HTTP/2's framing buys a proxy nothing on
// loopback but multiplexing, which its clients get here.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// isH2Preface reports whether the connection opens with the HTTP/2 preface.
// It waits for more bytes only while what has arrived is a prefix of the
// preface, so a short HTTP/1 request is never held up.
func (c *clientConn) isH2Preface() bool {
	p, _ := c.br.Peek(min(c.br.Buffered(), len(h2Preface)))
	if !strings.HasPrefix(h2Preface, string(p)) {
		return false
	}
	p, err := c.br.Peek(len(h2Preface))
	return err == nil && string(p) == h2Preface
}

// serveH2 serves the connection as HTTP/2 until the client is done.
func (c *clientConn) serveH2() {
	b := c.b
	b.h2Once.Do(func() {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		var next http.RoundTripper = newPoolTransport(b)
		if b.cache != nil {
			next = b.cache
		}
		b.h2 = &http.Server{
			Protocols: &protos,
			Handler: &httputil.ReverseProxy{
				Rewrite: func(pr *httputil.ProxyRequest) {
					pr.Out.URL.Scheme, pr.Out.URL.Host = "http", pr.In.Host
				},
				Transport: next,
				ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
					if errors.Is(err, ErrNoBackend) {
						w.Header().Set("Retry-After", "1")
						http.Error(w, "no pool member available", http.StatusServiceUnavailable)
						return
					}
					http.Error(w, "pool member failed", http.StatusBadGateway)
				},
			},
			ErrorLog: nil,
		}
	})
	if b.h2 == nil {
		return // the balancer is shutting down
	}
	c.h2 = true
	ln := &oneConnListener{conn: &h2Conn{Conn: c.c, r: c.br}, done: make(chan struct{})}
	ln.conn.(*h2Conn).onClose = ln.close
	b.h2.Serve(ln)
}

// h2Conn replays what the balancer already read before the preface was
// recognized.
type h2Conn struct {
	net.Conn
	r       *bufio.Reader
	onClose func()
}

func (c *h2Conn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *h2Conn) Close() error {
	err := c.Conn.Close()
	c.onClose()
	return err
}

// oneConnListener hands one connection to http.Server.Serve and then
// blocks until that connection closes, so Serve returns when it is done.
type oneConnListener struct {
	conn     net.Conn
	done     chan struct{}
	once     sync.Once
	accepted bool
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if !l.accepted {
		l.accepted = true
		return l.conn, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) close()         { l.once.Do(func() { close(l.done) }) }
func (l *oneConnListener) Close() error   { l.close(); return nil }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }

// shutdownH2 asks HTTP/2 clients to go away once their streams finish.
func (b *Balancer) shutdownH2(ctx context.Context) {
	b.h2Once.Do(func() {}) // no HTTP/2 server is built from now on
	if b.h2 != nil {
		b.h2.Shutdown(ctx)
	}
}
