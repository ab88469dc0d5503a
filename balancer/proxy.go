package balancer

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Serve accepts client connections on ln and proxies their requests until
// ctx is done. Then it stops accepting, lets in-flight requests finish
// within ShutdownGrace, closes idle keep-alive connections, and returns nil.
// Serve may be called for several listeners at once.
func (b *Balancer) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	var acceptErr error
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			acceptErr = err
			break
		}
		cc := b.newClientConn(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc.serve()
		}()
	}
	b.shutdown(&wg)
	return acceptErr
}

// shutdown closes idle client connections, waits for busy ones to finish
// their request, and after ShutdownGrace closes whatever is left.
func (b *Balancer) shutdown(wg *sync.WaitGroup) {
	b.closing.Store(true)
	b.connMu.Lock()
	for cc := range b.conns {
		if cc.idle.Load() {
			cc.c.SetReadDeadline(time.Now())
		}
	}
	b.connMu.Unlock()
	h2ctx, cancelH2 := context.WithTimeout(context.Background(), b.cfg.ShutdownGrace)
	defer cancelH2()
	go b.shutdownH2(h2ctx)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(b.cfg.ShutdownGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		b.connMu.Lock()
		for cc := range b.conns {
			cc.c.Close()
		}
		b.connMu.Unlock()
		<-done
	}
	for _, m := range b.Backends() {
		m.conns.closeIdle()
	}
}

// clientConn is one client connection and the buffers reused for every
// request on it.
type clientConn struct {
	b    *Balancer
	c    net.Conn
	dc   deadlineConn // c, remembering its read deadline
	br   *bufio.Reader
	bw   *bufio.Writer
	ip   netip.Addr
	ipFw []byte // the client address as written in X-Forwarded-For
	idle atomic.Bool

	req, resp message
	out       []byte // the outgoing request head, built once per request
	scratch   []byte // the outgoing response head
	cookieBuf []byte
	h2        bool // handed to the HTTP/2 server
	plan      plan // the request being served
}

func (c *clientConn) serve() {
	b := c.b
	defer func() {
		b.connMu.Lock()
		delete(b.conns, c)
		b.connMu.Unlock()
		b.counter.activeConns.Add(-1)
		c.c.Close()
		if c.h2 {
			return // the HTTP/2 server's goroutines may still hold the buffers
		}
		c.br.Reset(nil)
		c.bw.Reset(nil)
		b.clientReaders.Put(c.br)
		writerPool.Put(c.bw)
	}()
	first := true
	for {
		if b.closing.Load() {
			return
		}
		c.idle.Store(true)
		c.dc.setReadDeadline(time.Now().Add(b.cfg.IdleTimeout))
		// Checked again after going idle: shutdown sets closing, then
		// wakes the connections it sees idle, so one of the two notices.
		if b.closing.Load() {
			return
		}
		if !c.skipEmptyLines() {
			return
		}
		c.idle.Store(false)
		// The head timeout (slowloris defence) matters only while the head
		// is incomplete; most requests arrive whole in one read.
		if headEnd(c.peekBuffered(), 0) < 0 {
			c.dc.setReadDeadline(time.Now().Add(b.cfg.ReadHeaderTimeout))
		}
		if first && c.isH2Preface() {
			c.c.SetReadDeadline(time.Time{})
			c.serveH2()
			return
		}
		first = false
		head, err := c.readHead()
		if err != nil {
			if errors.Is(err, errHeaderTooBig) {
				b.counter.badRequests.Add(1)
				c.writeError(431, "request header too large", false)
			}
			return
		}
		if !c.handle(head) {
			return
		}
	}
}

// skipEmptyLines waits for a request's first byte, skipping the empty
// lines RFC 9112 section 2.2 lets a server ignore before a request.
func (c *clientConn) skipEmptyLines() bool {
	for i := 0; ; i++ {
		p, err := c.br.Peek(1)
		if err != nil {
			return false
		}
		if (p[0] != '\r' && p[0] != '\n') || i > 8 {
			return true
		}
		c.br.Discard(1)
	}
}

// peekBuffered returns what the read buffer holds, without reading.
func (c *clientConn) peekBuffered() []byte {
	p, _ := c.br.Peek(c.br.Buffered())
	return p
}

// readHead returns the request head at the start of the read buffer,
// reading until it is complete. The slice is valid until the next read.
func (c *clientConn) readHead() ([]byte, error) {
	return readHeadFrom(c.br, c.b.cfg.MaxHeaderBytes)
}

// readHeadFrom peeks at br until it holds a whole message head of at most
// max bytes.
func readHeadFrom(br *bufio.Reader, max int) ([]byte, error) {
	from := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		if n := headEnd(buf, from); n >= 0 {
			if n > max {
				return nil, errHeaderTooBig
			}
			return buf[:n], nil
		}
		if len(buf) >= max {
			return nil, errHeaderTooBig
		}
		from = len(buf)
		if _, err := br.Peek(len(buf) + 1); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, errHeaderTooBig
			}
			if len(buf) > 0 && (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)) {
				return nil, errMalformed
			}
			return nil, err
		}
	}
}

// plan is what one request needs across its attempts.
type plan struct {
	head       []byte // the client's request head (in the read buffer)
	bodyLen    int64  // Content-Length, or -1 for chunked, 0 for none
	replayable bool   // the whole body sits in the read buffer
	idem       bool
	pinned     *Backend
	repinFrom  string
	setCookie  bool
	// staleRetried is set once a stale keep-alive connection was retried.
	staleRetried bool
	start        int64
	deadline     time.Time
}

// handle proxies one request whose head is head. It reports whether the
// client connection may carry another request.
func (c *clientConn) handle(head []byte) bool {
	b, m := c.b, &c.req
	if err := parseRequestHead(head, m); err != nil {
		b.counter.badRequests.Add(1)
		if errors.Is(err, errUnsupportedTE) {
			c.writeError(501, "unsupported transfer-encoding", false)
		} else {
			c.writeError(400, "malformed request", false)
		}
		return false
	}
	// The plan lives in the connection so that it does not escape to the
	// heap (the cache path hands a pointer to it through a context).
	p := &c.plan
	*p = plan{head: head, idem: idempotent(m)}
	p.start = nanotime()
	p.deadline = time.Now().Add(b.cfg.ResponseTimeout)
	m.ClientIP, m.Now = c.ip, p.start
	b.counter.requests.Add(1)
	b.budget.onRequest()
	b.recheck(p.start)

	switch {
	case m.chunked:
		p.bodyLen = -1
	case m.contentLength > 0:
		p.bodyLen = m.contentLength
	}
	if m.expect100 && p.bodyLen != 0 {
		c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if c.bw.Flush() != nil {
			return false
		}
	}
	p.replayable = p.bodyLen == 0
	if p.bodyLen > 0 && p.bodyLen <= int64(c.br.Size()-len(head)) {
		// Small bodies are read whole so an attempt can be replayed.
		c.dc.setReadDeadline(time.Now().Add(b.cfg.BodyTimeout))
		full, err := c.br.Peek(len(head) + int(p.bodyLen))
		if err != nil {
			return false
		}
		p.head = full[:len(head)]
		parseRequestHead(p.head, m) // the buffer may have moved
		p.replayable = true
	}
	if b.sticky != nil {
		c.stickyPin(p)
	}
	if c.viaCache(p) {
		return c.serveCached(p)
	}
	c.out = buildRequestHead(c.out[:0], m, c.ipFw)
	return c.attempts(p)
}

// attempts runs the attempt loop: the pinned or chosen member first, then,
// while the failure is provably safe to retry and the budget allows,
// different members.
func (c *clientConn) attempts(p *plan) bool {
	b, m := c.b, &c.req
	var triedBuf [4]*Backend
	tried := triedBuf[:0]
	for attempt := 0; ; attempt++ {
		var member *Backend
		if attempt == 0 && p.pinned != nil {
			member = p.pinned
		} else {
			member = b.pick(m, tried)
		}
		if member == nil {
			b.counter.noBackend.Add(1)
			return c.failRequest(p, 503, "no pool member available")
		}
		if attempt > 0 && b.sticky != nil {
			if p.pinned != nil && p.repinFrom == "" {
				p.repinFrom = p.pinned.ID
			}
			p.setCookie = true
		}
		res := c.forward(member, p)
		switch res {
		case resDone:
			return true
		case resClose:
			return false
		case resQueueFull:
			b.counter.queueFull.Add(1)
			return c.failRequest(p, 503, "pool member busy")
		}
		// Nothing reached the client yet.
		if res == resStale && !p.staleRetried {
			// Once, the same member may take it on a fresh connection.
			p.staleRetried = true
			if attempt == 0 && p.pinned != nil {
				attempt-- // keep the pin
			}
			continue
		}
		tried = append(tried, member)
		if res == resTimeout {
			b.counter.upstreamErrs.Add(1)
			return c.failRequest(p, 504, "pool member timed out")
		}
		if res == resFailed || attempt+1 >= b.cfg.MaxAttempts || time.Now().After(p.deadline) {
			b.counter.upstreamErrs.Add(1)
			return c.failRequest(p, 502, "pool member failed")
		}
		if !b.budget.withdraw() {
			b.counter.retryDenied.Add(1)
			b.counter.upstreamErrs.Add(1)
			return c.failRequest(p, 502, "pool member failed")
		}
		b.counter.retries.Add(1)
	}
}

// failRequest answers with an error status. The connection stays open only
// when the request body was already consumed or there was none.
func (c *clientConn) failRequest(p *plan, status int, msg string) bool {
	keep := p.replayable && !c.req.connClose
	if keep {
		c.br.Discard(len(p.head) + int(max(p.bodyLen, 0)))
	}
	c.writeError(status, msg, keep)
	return keep
}

// pick asks the policy for a member other than those already tried.
func (b *Balancer) pick(m *message, tried []*Backend) *Backend {
	return b.pickView(&m.Request, tried)
}

func (b *Balancer) pickView(r *Request, tried []*Backend) *Backend {
	pool := b.snap.Load().eligible
	switch len(pool) {
	case 0:
		return nil
	case 1:
		if len(tried) > 0 && pool[0] == tried[0] {
			return nil
		}
		return pool[0]
	}
	sel := *b.selector.Load()
	// A retry asks the policy again over the same pool slice (a filtered
	// copy would look like a new pool to the policies' per-pool caches and
	// make them rebuild), and takes the first answer not tried yet.
	for i := 0; i < 4; i++ {
		x, ok := sel.Select(pool, r)
		if !ok {
			return nil
		}
		if !containsBackend(tried, x) {
			return x
		}
	}
	// The policy keeps choosing tried members (a hash key, say): take the
	// least loaded of the others.
	var best *Backend
	for _, x := range pool {
		if !containsBackend(tried, x) && (best == nil || x.InFlight()*int64(best.Weight) < best.InFlight()*int64(x.Weight)) {
			best = x
		}
	}
	return best
}

func containsBackend(s []*Backend, b *Backend) bool {
	for _, x := range s {
		if x == b {
			return true
		}
	}
	return false
}

// stickyPin reads the sticky cookie: a valid one whose member may still
// serve it pins the request there; otherwise the request goes through the
// policy and a new cookie is issued, and if the old member is gone the
// app server is told where the session came from.
func (c *clientConn) stickyPin(p *plan) {
	b := c.b
	v := c.req.Cookie(b.cfg.StickyCookie)
	p.setCookie = true
	if v == nil {
		return
	}
	now := time.Now()
	token, expiry, ok := b.sticky.decode(v, now)
	if !ok {
		return
	}
	snap := b.snap.Load()
	member := snap.byToken[token]
	if member == nil {
		b.mu.Lock()
		p.repinFrom = b.retired[token]
		b.mu.Unlock()
		return
	}
	if !b.canServePinned(member, p.start) {
		p.repinFrom = member.ID
		return
	}
	p.pinned = member
	p.setCookie = expiry.Sub(now) < b.cfg.StickyTTL/2
}

// canServePinned reports whether a member may serve a session pinned to
// it: it is ready and not ejected, or draining for less than the window.
func (b *Balancer) canServePinned(m *Backend, now int64) bool {
	switch m.State() {
	case Ready:
		return m.ejectedUntil.Load() <= now
	case Draining:
		return now-m.drainSince.Load() < int64(b.cfg.DrainStickyWindow)
	}
	return false
}

// writeError answers the client with a short plain-text error.
func (c *clientConn) writeError(status int, msg string, keepAlive bool) {
	w := c.bw
	w.WriteString("HTTP/1.1 ")
	w.WriteString(strconv.Itoa(status))
	w.WriteByte(' ')
	w.WriteString(statusText(status))
	w.WriteString("\r\n")
	c.writeErrorRest(status, msg, keepAlive)
}

// writeErrorRest writes an error response's fields after the status line
// (and any fields the caller added), then its body, and flushes.
func (c *clientConn) writeErrorRest(status int, msg string, keepAlive bool) {
	w := c.bw
	w.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Length: ")
	w.WriteString(strconv.Itoa(len(msg) + 1))
	if status == 503 {
		w.WriteString("\r\nRetry-After: 1")
	}
	if !keepAlive {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	w.WriteString(msg)
	w.WriteByte('\n')
	w.Flush()
}

func statusText(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 431:
		return "Request Header Fields Too Large"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	}
	return "Error"
}
