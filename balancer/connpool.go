package balancer

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// backendConn is one keep-alive connection to a pool member, with its
// buffered reader and writer. It is used by one request at a time.
type backendConn struct {
	deadlineConn
	br *bufio.Reader
	bw *bufio.Writer
	// idleSince is when the connection went back to the pool (nanotime).
	idleSince int64
	// reused is true once the connection has carried a request: a failure
	// on a reused connection may mean the member closed it while idle.
	reused bool
}

// connPool keeps a member's idle keep-alive connections, newest on top, so
// the ones that sat idle longest age out first.
type connPool struct {
	// mu guards idle.
	mu   sync.Mutex
	idle []*backendConn
}

// get returns an idle connection younger than maxIdle, or nil.
func (p *connPool) get(now int64, maxIdle time.Duration) *backendConn {
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now-c.idleSince < int64(maxIdle) {
			p.mu.Unlock()
			return c
		}
		c.release()
	}
	p.mu.Unlock()
	return nil
}

// put returns c to the pool, or closes it when the pool holds max already.
func (p *connPool) put(c *backendConn, now int64, max int) {
	c.idleSince = now
	c.reused = true
	p.mu.Lock()
	if len(p.idle) < max {
		p.idle = append(p.idle, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	c.release()
}

// closeIdle closes every idle connection.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.release()
	}
}

// bufSize is the size of the buffers on both sides of the proxy. Responses
// and bodies larger than this stream through it.
const bufSize = 16 << 10

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufSize) }}
)

// dial opens a new connection to the member.
func (b *Backend) dial(d *net.Dialer) (*backendConn, error) {
	c, err := d.Dial("tcp", b.addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(c)
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(c)
	return &backendConn{deadlineConn: deadlineConn{Conn: c}, br: br, bw: bw}, nil
}

// release closes the connection and returns its buffers for reuse.
func (c *backendConn) release() {
	c.Conn.Close()
	c.br.Reset(nil)
	c.bw.Reset(nil)
	readerPool.Put(c.br)
	writerPool.Put(c.bw)
	c.br, c.bw = nil, nil
}

// waitSet holds a member's connections whose request is sent and whose
// response head has not arrived, so that when the member is taken out of
// rotation (its lease ran out, a probe failed, it was removed) those
// requests are cut short and, when safe, retried on another member instead
// of waiting for a server that may never answer (a stopped process).
type waitSet struct {
	// mu guards conns and aborted.
	mu      sync.Mutex
	conns   map[*backendConn]struct{}
	aborted map[*backendConn]struct{}
}

func (w *waitSet) add(c *backendConn) {
	w.mu.Lock()
	if w.conns == nil {
		w.conns = make(map[*backendConn]struct{})
	}
	w.conns[c] = struct{}{}
	w.mu.Unlock()
}

// remove forgets c and reports whether it was aborted.
func (w *waitSet) remove(c *backendConn) bool {
	w.mu.Lock()
	delete(w.conns, c)
	_, aborted := w.aborted[c]
	if aborted {
		delete(w.aborted, c)
	}
	w.mu.Unlock()
	return aborted
}

// abortAll wakes every waiting request with a read deadline in the past.
func (w *waitSet) abortAll() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aborted == nil {
		w.aborted = make(map[*backendConn]struct{})
	}
	n := 0
	for c := range w.conns {
		w.aborted[c] = struct{}{}
		c.SetReadDeadline(time.Unix(1, 0))
		n++
	}
	return n
}
