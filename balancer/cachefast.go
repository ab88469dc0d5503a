package balancer

import (
	"sync"

	"scaleout/httpcache"
)

// hitCache is the fast path a Cache may offer: answer a fresh hit from the
// parsed request, with the response head already serialized, so the
// balancer neither builds an *http.Request nor formats fields per hit.
// httpcache.Shared offers it; a Cache without it goes through RoundTrip.
type hitCache interface {
	AppendHit(dst []byte, r *httpcache.HitRequest) (head, body []byte, ok bool)
}

// hitScratch is the per-request state of the fast path, pooled because the
// fields slice and the head buffer outlive one call's stack frame.
type hitScratch struct {
	req  httpcache.HitRequest
	head []byte
}

var hitScratchPool = sync.Pool{New: func() any { return &hitScratch{head: make([]byte, 0, 1024)} }}

// serveHit answers the request from a fresh stored response if the cache
// can do so on its fast path. It reports whether it answered, and then
// whether the connection may carry another request. When it did not
// answer, nothing was written or consumed, and the caller goes on with
// RoundTrip, which decides everything the fast path declines.
func (c *clientConn) serveHit(p *plan) (answered, keep bool) {
	hc, ok := c.b.cache.(hitCache)
	if !ok {
		return false, false
	}
	m := &c.req
	sc := hitScratchPool.Get().(*hitScratch)
	defer hitScratchPool.Put(sc)
	r := &sc.req
	r.Method, r.Target, r.Host = m.Method, m.Target, m.Header("host")
	r.Fields = r.Fields[:0]
	// The same fields httpRequest gives RoundTrip: end-to-end, no Host.
	for i := range m.headers {
		f := &m.headers[i]
		if m.hopByHop(f.name) || equalFold(f.name, "host") {
			continue
		}
		r.Fields = append(r.Fields, httpcache.HitField{Name: f.name, Value: f.value})
	}
	head, body, ok := hc.AppendHit(sc.head[:0], r)
	// Drop the references into the read buffer before pooling.
	clear(r.Fields)
	r.Method, r.Target, r.Host = nil, nil, nil
	if !ok {
		return false, false
	}
	if cap(head) <= 64<<10 {
		sc.head = head
	}
	keep = !m.connClose && !c.b.closing.Load()
	w := c.bw
	w.Write(head)
	switch {
	case !keep:
		w.WriteString("Connection: close\r\n")
	case !m.http11:
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")
	w.Write(body)
	c.br.Discard(len(p.head))
	return true, w.Flush() == nil && keep
}
