package balancer

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// result is how one attempt ended.
type result int

const (
	resDone      result = iota // answered; the client connection stays open
	resClose                   // answered or broken; close the client connection
	resRetryable               // failed before anything reached the client, safely retryable
	resFailed                  // failed before anything reached the client, not retryable
	resTimeout                 // the member did not answer in time
	resQueueFull               // the member's concurrency cap and queue are full
	resStale                   // a reused keep-alive connection was closed under us: retry, same member allowed
)

func (b *Balancer) newClientConn(c net.Conn) *clientConn {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	cc := &clientConn{b: b, c: c, dc: deadlineConn{Conn: c}}
	if v := b.clientReaders.Get(); v != nil {
		cc.br = v.(*bufio.Reader)
		cc.br.Reset(c)
	} else {
		cc.br = bufio.NewReaderSize(c, b.cfg.MaxHeaderBytes)
	}
	cc.bw = writerPool.Get().(*bufio.Writer)
	cc.bw.Reset(c)
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		cc.ip = ap.Addr().Unmap()
	}
	cc.ipFw = []byte(cc.ip.String())
	b.connMu.Lock()
	b.conns[cc] = struct{}{}
	b.connMu.Unlock()
	b.counter.activeConns.Add(1)
	return cc
}

// acquire takes one of the member's concurrency slots, waiting in its
// bounded queue for at most QueueTimeout.
func (b *Balancer) acquire(m *Backend) bool {
	select {
	case m.slots <- struct{}{}:
		return true
	default:
	}
	if int(m.queued.Add(1)) > b.cfg.QueueSize {
		m.queued.Add(-1)
		return false
	}
	defer m.queued.Add(-1)
	b.counter.queued.Add(1)
	start := time.Now()
	t := time.NewTimer(b.cfg.QueueTimeout)
	defer t.Stop()
	select {
	case m.slots <- struct{}{}:
		b.counter.queueWaitNs.Add(uint64(time.Since(start)))
		return true
	case <-t.C:
		b.counter.queueWaitNs.Add(uint64(time.Since(start)))
		return false
	}
}

// forward makes one attempt at the request on member mb: send the head and
// body, read the response head, relay the response.
func (c *clientConn) forward(mb *Backend, p *plan) result {
	b := c.b
	if mb.slots != nil {
		if !b.acquire(mb) {
			return resQueueFull
		}
		defer func() { <-mb.slots }()
	}
	mb.inFlight.Add(1)
	defer mb.inFlight.Add(-1)
	mb.requests.Add(1)
	sent := nanotime()

	bc := mb.conns.get(sent, b.cfg.IdleConnTimeout)
	if bc != nil && !p.idem && !bc.alive() {
		bc.release()
		bc = nil
	}
	if bc == nil {
		var err error
		bc, err = mb.dial(&b.dialer)
		if err != nil {
			// Never sent: safe to retry whatever the method.
			c.fail(mb, sent)
			b.log.Debug("dial failed", "member", mb.ID, "err", err)
			return resRetryable
		}
	}
	if res, ok := c.send(bc, p); !ok {
		if res != resStale {
			c.fail(mb, sent)
		}
		return res
	}
	bc.setReadDeadline(p.deadline)
	mb.waiting.add(bc)
	head, err := c.readResponseHead(bc)
	aborted := mb.waiting.remove(bc)
	if err != nil {
		reused := bc.reused
		bc.release()
		if reused && !aborted && p.idem && p.replayable && connClosed(err) {
			// The member closed an idle keep-alive connection as we used
			// it (servers' idle timeouts race ours): not its failure.
			return resStale
		}
		c.fail(mb, sent)
		if errors.Is(err, os.ErrDeadlineExceeded) && !aborted {
			return resTimeout
		}
		if p.idem && p.replayable {
			return resRetryable
		}
		return resFailed
	}
	r := &c.resp
	failed := r.status >= 500
	now := nanotime()
	mb.observe(now, time.Duration(now-sent), failed)
	b.noteResult(mb, failed)
	res := c.relay(bc, mb, p, head)
	mb.stats.byClass[classOf(r.status)].observe(time.Duration(nanotime() - p.start))
	return res
}

// fail records a failed attempt on mb.
func (c *clientConn) fail(mb *Backend, sent int64) {
	now := nanotime()
	mb.observe(now, time.Duration(now-sent), true)
	c.b.noteResult(mb, true)
	mb.stats.byClass[0].observe(time.Duration(now - sent))
}

// send writes the request head and body to bc. On failure bc is released
// and the result says whether a retry is safe.
func (c *clientConn) send(bc *backendConn, p *plan) (result, bool) {
	bc.bw.Write(c.out)
	if p.repinFrom != "" {
		bc.bw.WriteString("Scaleout-Repinned-From: ")
		bc.bw.WriteString(p.repinFrom)
		bc.bw.WriteString("\r\n")
	}
	bc.bw.WriteString("\r\n")
	var err error
	if p.replayable {
		if p.bodyLen > 0 {
			full, _ := c.br.Peek(len(p.head) + int(p.bodyLen))
			bc.bw.Write(full[len(p.head):])
		}
		err = bc.bw.Flush()
	} else {
		c.br.Discard(len(p.head))
		bodyTimeout := c.b.cfg.BodyTimeout
		if p.bodyLen < 0 {
			err = copyChunked(bc.bw, c.br, &c.dc, bodyTimeout, true)
		} else {
			err = copyN(bc.bw, c.br, &c.dc, p.bodyLen, bodyTimeout)
		}
		if err == nil {
			err = bc.bw.Flush()
		}
	}
	if err == nil {
		return resDone, true
	}
	reused := bc.reused
	bc.release()
	var ce copyError
	if errors.As(err, &ce) && ce.read {
		return resClose, false // the client went away mid-body
	}
	if reused && p.idem && p.replayable && connClosed(err) {
		return resStale, false
	}
	if p.idem && p.replayable {
		return resRetryable, false
	}
	return resFailed, false
}

// readResponseHead reads the member's response head, relaying any 1xx
// informational responses (other than 101) to the client first.
func (c *clientConn) readResponseHead(bc *backendConn) ([]byte, error) {
	for {
		head, err := readHeadFrom(bc.br, bc.br.Size())
		if err != nil {
			return nil, err
		}
		if err := parseResponseHead(head, &c.resp); err != nil {
			return nil, err
		}
		s := c.resp.status
		if s >= 200 || s == 101 {
			return head, nil
		}
		if s == 100 {
			// The balancer answered Expect: 100-continue itself.
			bc.br.Discard(len(head))
			continue
		}
		c.scratch = buildResponseHead(c.scratch[:0], &c.resp, respOpts{keepAlive: true})
		bc.br.Discard(len(head))
		c.bw.Write(c.scratch)
		if err := c.bw.Flush(); err != nil {
			return nil, copyError{read: false, err: err}
		}
	}
}

// relay writes the response whose head is head to the client and streams
// its body, then returns bc to the pool when it can carry another request.
func (c *clientConn) relay(bc *backendConn, mb *Backend, p *plan, head []byte) result {
	b, r, q := c.b, &c.resp, &c.req
	noBody := isHEAD(q.Method) || r.status == 204 || r.status == 304 || r.status == 101
	closeDelimited := !noBody && !r.chunked && r.contentLength < 0
	http11 := q.http11
	keepClient := !q.connClose && !b.closing.Load() && r.status != 101
	if !http11 && (closeDelimited || r.chunked) {
		keepClient = false // an HTTP/1.0 client learns the end from the close
	}
	opts := respOpts{
		keepAlive:   keepClient,
		keepAlive10: keepClient && !http11,
		chunk:       http11 && !noBody && (r.chunked || closeDelimited),
	}
	if b.sticky != nil && p.setCookie {
		opts.cookie = c.stickyCookie(mb)
	}
	if b.cache != nil && r.status < 400 && !safeMethod(q.Method) {
		c.invalidate(r)
	}
	c.scratch = buildResponseHead(c.scratch[:0], r, opts)
	bc.br.Discard(len(head))
	if p.replayable {
		c.br.Discard(len(p.head) + int(max(p.bodyLen, 0)))
	}
	c.bw.Write(c.scratch)
	if r.status == 101 {
		if q.upgrade {
			c.tunnel(bc)
		} else {
			bc.release()
		}
		return resClose
	}
	var err error
	timeout := b.cfg.BodyTimeout
	switch {
	case noBody:
	case r.chunked:
		err = copyChunked(c.bw, bc.br, &bc.deadlineConn, timeout, opts.chunk)
	case closeDelimited:
		err = copyToEOF(c.bw, bc.br, &bc.deadlineConn, timeout, opts.chunk)
	default:
		err = copyN(c.bw, bc.br, &bc.deadlineConn, r.contentLength, timeout)
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil || r.connClose || closeDelimited {
		bc.release()
	} else {
		mb.conns.put(bc, nanotime(), b.cfg.MaxIdleConnsPerBackend)
	}
	if err != nil || !keepClient {
		return resClose
	}
	return resDone
}

// tunnel joins the client and member connections after a 101 Switching
// Protocols answer (a WebSocket, say) until either side closes.
func (c *clientConn) tunnel(bc *backendConn) {
	if err := c.bw.Flush(); err != nil {
		bc.release()
		return
	}
	c.c.SetDeadline(time.Time{})
	bc.Conn.SetDeadline(time.Time{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(bc.Conn, c.br)
		if tc, ok := bc.Conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	io.Copy(c.c, bc.br)
	if tc, ok := c.c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	wg.Wait()
	bc.release()
}

// stickyCookie returns the Set-Cookie value pinning the client to mb.
func (c *clientConn) stickyCookie(mb *Backend) []byte {
	b := c.b
	ttl := b.cfg.StickyTTL
	v := append(c.cookieBuf[:0], b.cfg.StickyCookie...)
	v = append(v, '=')
	v = b.sticky.encode(v, mb.stickyToken, time.Now().Add(ttl))
	v = append(v, "; Path=/; Max-Age="...)
	v = strconv.AppendInt(v, int64(ttl/time.Second), 10)
	v = append(v, "; HttpOnly; SameSite=Lax"...)
	c.cookieBuf = v
	return v
}

// safeMethod reports whether a method is safe (RFC 9110 section 9.2.1).
func safeMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// invalidate purges from the shared cache what the successful unsafe
// request just answered by r changed.
func (c *clientConn) invalidate(r *message) {
	var locs []string
	for i := range r.headers {
		f := &r.headers[i]
		if equalFold(f.name, "location") || equalFold(f.name, "content-location") {
			locs = append(locs, string(f.value))
		}
	}
	c.purgeAfterWrite(string(c.req.Header("host")), c.req.Target, locs)
}

// connClosed reports whether err says the peer had closed the connection.
func connClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
