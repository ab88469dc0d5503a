package balancer

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Cache is a shared HTTP cache in front of the pool: httpcache.Shared is
// one. The balancer sends it GET and HEAD requests without bodies; misses
// come back to the pool through the RoundTripper given to Config.NewCache.
// Unsafe methods take the fast path, and the balancer purges the URLs a
// successful one invalidates (RFC 9111 section 4.4).
type Cache interface {
	RoundTrip(*http.Request) (*http.Response, error)
	PurgeURL(rawURL string) (int, error)
}

// cacheCall carries one client request through the cache to the pool
// transport, so a miss is forwarded with the request's pin and policy view.
type cacheCall struct {
	c      *clientConn
	p      *plan
	served *Backend
}

type cacheCallKey struct{}

// viaCache reports whether a request should be answered through the
// shared cache: a GET or HEAD without a body.
func (c *clientConn) viaCache(p *plan) bool {
	if c.b.cache == nil || p.bodyLen != 0 || c.req.upgrade {
		return false
	}
	m := c.req.Method
	return string(m) == "GET" || string(m) == "HEAD"
}

// serveCached answers the request through the cache: a fresh hit on the
// cache's fast path when it has one (cachefast.go), else by RoundTrip.
func (c *clientConn) serveCached(p *plan) bool {
	if answered, keep := c.serveHit(p); answered {
		return keep
	}
	b, m := c.b, &c.req
	req, err := c.httpRequest(p)
	if err != nil {
		b.counter.badRequests.Add(1)
		c.writeError(400, "malformed request target", false)
		return false
	}
	call := &cacheCall{c: c, p: p}
	ctx, cancel := context.WithDeadline(context.WithValue(context.Background(), cacheCallKey{}, call), p.deadline)
	defer cancel()
	resp, err := b.cache.RoundTrip(req.WithContext(ctx))
	c.br.Discard(len(p.head))
	if err != nil {
		status, msg := 502, "pool member failed"
		if errors.Is(err, ErrNoBackend) {
			status, msg = 503, "no pool member available"
		} else if errors.Is(err, context.DeadlineExceeded) {
			status, msg = 504, "pool member timed out"
		}
		b.counter.upstreamErrs.Add(1)
		c.bw.WriteString("HTTP/1.1 ")
		c.bw.WriteString(strconv.Itoa(status))
		c.bw.WriteString(" " + statusText(status) + "\r\nCache-Status: scaleout; fwd=miss; detail=origin-error\r\n")
		c.writeErrorRest(status, msg, !m.connClose)
		return !m.connClose
	}
	defer resp.Body.Close()
	var cookie []byte
	if b.sticky != nil && p.setCookie && call.served != nil {
		cookie = c.stickyCookie(call.served)
	}
	return c.writeHTTPResponse(resp, cookie)
}

// httpRequest builds the *http.Request the cache sees from the parsed
// request. Only the cache path pays for it.
func (c *clientConn) httpRequest(p *plan) (*http.Request, error) {
	m := &c.req
	host := string(m.Header("host"))
	u, err := url.ParseRequestURI(string(m.Target))
	if err != nil {
		return nil, err
	}
	u.Scheme, u.Host = "http", host
	h := make(http.Header, len(m.headers))
	for i := range m.headers {
		f := &m.headers[i]
		if m.hopByHop(f.name) || equalFold(f.name, "host") {
			continue
		}
		k := textproto.CanonicalMIMEHeaderKey(string(f.name))
		h[k] = append(h[k], string(f.value))
	}
	return &http.Request{
		Method: string(m.Method), URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Host: host, RemoteAddr: c.c.RemoteAddr().String(),
		RequestURI: string(m.Target),
	}, nil
}

// writeHTTPResponse relays a response from the cache to the client.
func (c *clientConn) writeHTTPResponse(resp *http.Response, cookie []byte) bool {
	q := &c.req
	noBody := isHEAD(q.Method) || resp.StatusCode == 204 || resp.StatusCode == 304 || resp.StatusCode < 200
	keep := !q.connClose && !c.b.closing.Load()
	chunk := !noBody && resp.ContentLength < 0
	if chunk && !q.http11 {
		keep, chunk = false, false
	}
	w := c.bw
	w.WriteString("HTTP/1.1 ")
	w.WriteString(strconv.Itoa(resp.StatusCode))
	w.WriteByte(' ')
	w.WriteString(http.StatusText(resp.StatusCode))
	w.WriteString("\r\n")
	connTokens := resp.Header.Values("Connection")
	for k, vs := range resp.Header {
		if hopByHopName(k, connTokens) || k == "Content-Length" {
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if resp.ContentLength >= 0 && (!noBody || isHEAD(q.Method)) && resp.StatusCode != 204 && resp.StatusCode != 304 {
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(resp.ContentLength, 10))
		w.WriteString("\r\n")
	}
	if chunk {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if cookie != nil {
		w.WriteString("Set-Cookie: ")
		w.Write(cookie)
		w.WriteString("\r\n")
	}
	switch {
	case !keep:
		w.WriteString("Connection: close\r\n")
	case !q.http11:
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")
	if !noBody {
		var err error
		if chunk {
			err = copyChunkedFrom(w, resp.Body)
		} else {
			_, err = io.Copy(w, resp.Body)
		}
		if err != nil {
			w.Flush()
			return false
		}
	}
	return w.Flush() == nil && keep
}

// copyChunkedFrom writes r to w in chunked coding.
func copyChunkedFrom(w *bufio.Writer, r io.Reader) error {
	var buf [16 << 10]byte
	for {
		n, err := r.Read(buf[:])
		if n > 0 {
			writeChunkHeader(w, int64(n))
			w.Write(buf[:n])
			w.WriteString("\r\n")
			if err == nil {
				if ferr := w.Flush(); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			w.WriteString("0\r\n\r\n")
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// hopByHopName reports whether a canonical field name is hop-by-hop.
func hopByHopName(k string, connTokens []string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization":
		return true
	}
	for _, line := range connTokens {
		for _, t := range strings.Split(line, ",") {
			if strings.EqualFold(strings.TrimSpace(t), k) {
				return true
			}
		}
	}
	return false
}

// poolTransport forwards the cache's misses and revalidations to the pool
// with the same policy, pinning, retries and accounting as the fast path.
type poolTransport struct {
	b *Balancer
	t *http.Transport
}

func newPoolTransport(b *Balancer) *poolTransport {
	return &poolTransport{b: b, t: &http.Transport{
		DialContext:           b.dialer.DialContext,
		MaxIdleConnsPerHost:   b.cfg.MaxIdleConnsPerBackend,
		IdleConnTimeout:       b.cfg.IdleConnTimeout,
		ResponseHeaderTimeout: b.cfg.ResponseTimeout,
		DisableCompression:    true,
	}}
}

// RoundTrip sends req to a pool member, retrying a failed attempt on
// another member while the method is safe and the budget allows.
func (pt *poolTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	b := pt.b
	call, _ := req.Context().Value(cacheCallKey{}).(*cacheCall)
	view := &Request{Method: []byte(req.Method), Target: []byte(req.URL.RequestURI()), Now: nanotime()}
	var pinned *Backend
	if call != nil {
		view = &call.c.req.Request
		pinned = call.p.pinned
	}
	safe := req.Method == "GET" || req.Method == "HEAD"
	var tried []*Backend
	for attempt := 0; ; attempt++ {
		member := pinned
		if attempt > 0 || member == nil {
			member = b.pickView(view, tried)
		}
		if member == nil {
			b.counter.noBackend.Add(1)
			return nil, ErrNoBackend
		}
		resp, err := pt.send(member, req)
		if err == nil {
			if call != nil {
				call.served = member
				if attempt > 0 {
					call.p.setCookie = true
				}
			}
			return resp, nil
		}
		tried = append(tried, member)
		if !safe || attempt+1 >= b.cfg.MaxAttempts || req.Context().Err() != nil || !b.budget.withdraw() {
			return nil, err
		}
		b.counter.retries.Add(1)
	}
}

func (pt *poolTransport) send(member *Backend, req *http.Request) (*http.Response, error) {
	b := pt.b
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host = "http", member.addr
	out.RequestURI = ""
	if ip, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		if prior := out.Header.Get("X-Forwarded-For"); prior != "" {
			ip = prior + ", " + ip
		}
		out.Header.Set("X-Forwarded-For", ip)
	}
	out.Header.Set("X-Forwarded-Proto", "http")
	out.Header.Set("X-Forwarded-Host", req.Host)
	member.inFlight.Add(1)
	member.requests.Add(1)
	sent := nanotime()
	resp, err := pt.t.RoundTrip(out)
	now := nanotime()
	if err != nil {
		member.inFlight.Add(-1)
		member.observe(now, time.Duration(now-sent), true)
		b.noteResult(member, true)
		return nil, err
	}
	failed := resp.StatusCode >= 500
	member.observe(now, time.Duration(now-sent), failed)
	b.noteResult(member, failed)
	resp.Body = &memberBody{ReadCloser: resp.Body, m: member, class: classOf(resp.StatusCode), start: sent}
	return resp, nil
}

// memberBody ends a member's in-flight request when its body is closed.
type memberBody struct {
	io.ReadCloser
	m      *Backend
	class  int
	start  int64
	closed bool
}

func (mb *memberBody) Close() error {
	if !mb.closed {
		mb.closed = true
		mb.m.inFlight.Add(-1)
		mb.m.stats.byClass[mb.class].observe(time.Duration(nanotime() - mb.start))
	}
	return mb.ReadCloser.Close()
}

// purgeAfterWrite invalidates what a successful unsafe request changed:
// its own URL and the same-host URLs in Location and Content-Location
// (RFC 9111 section 4.4).
func (c *clientConn) purgeAfterWrite(host string, target []byte, locations []string) {
	base := "http://" + host
	c.b.cache.PurgeURL(base + string(target))
	for _, loc := range locations {
		u, err := url.Parse(loc)
		if err != nil {
			continue
		}
		if !u.IsAbs() {
			c.b.cache.PurgeURL(base + u.RequestURI())
		} else if u.Host == host {
			c.b.cache.PurgeURL(loc)
		}
	}
}
