package balancer

import "strconv"

// buildRequestHead appends the head forwarded to a member for the client
// request m, without its final empty line: the request line in HTTP/1.1,
// the end-to-end fields, and the forwarding fields (X-Forwarded-For,
// X-Forwarded-Proto, X-Forwarded-Host and RFC 7239 Forwarded), with any
// earlier X-Forwarded-For and Forwarded values kept in front of ours.
func buildRequestHead(dst []byte, m *message, clientIP []byte) []byte {
	dst = append(dst, m.Method...)
	dst = append(dst, ' ')
	dst = append(dst, m.Target...)
	dst = append(dst, " HTTP/1.1\r\n"...)
	var xff, fwd, host []byte
	xffN, fwdN := 0, 0
	for i := range m.headers {
		f := &m.headers[i]
		switch {
		case m.hopByHop(f.name):
			continue
		case len(f.name) == 15 && equalFold(f.name, "x-forwarded-for"):
			xff, xffN = f.value, xffN+1
			continue
		case len(f.name) == 9 && equalFold(f.name, "forwarded"):
			fwd, fwdN = f.value, fwdN+1
			continue
		case len(f.name) == 17 && (equalFold(f.name, "x-forwarded-proto") || equalFold(f.name, "x-forwarded-host")):
			continue
		case len(f.name) == 22 && equalFold(f.name, "scaleout-repinned-from"):
			continue // only the balancer says this
		case len(f.name) == 4 && equalFold(f.name, "host"):
			host = f.value
		}
		dst = append(dst, f.name...)
		dst = append(dst, ": "...)
		dst = append(dst, f.value...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "X-Forwarded-For: "...)
	dst = appendJoined(dst, m, "x-forwarded-for", xff, xffN)
	dst = append(dst, clientIP...)
	dst = append(dst, "\r\nX-Forwarded-Proto: http\r\n"...)
	if host != nil {
		dst = append(dst, "X-Forwarded-Host: "...)
		dst = append(dst, host...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Forwarded: "...)
	dst = appendJoined(dst, m, "forwarded", fwd, fwdN)
	dst = append(dst, "for="...)
	if len(clientIP) > 0 && clientIP[0] != '[' && containsByte(clientIP, ':') {
		dst = append(dst, "\"["...)
		dst = append(dst, clientIP...)
		dst = append(dst, "]\""...)
	} else {
		dst = append(dst, clientIP...)
	}
	if host != nil && !containsByte(host, '"') && !containsByte(host, '\\') {
		dst = append(dst, ";host=\""...)
		dst = append(dst, host...)
		dst = append(dst, '"')
	}
	dst = append(dst, ";proto=http\r\n"...)
	if m.chunked {
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	if m.upgrade {
		dst = append(dst, "Connection: Upgrade\r\n"...)
	}
	return dst
}

// appendJoined appends the earlier values of a list field followed by ", ".
// last is the only value when n is 1; otherwise all are gathered again.
func appendJoined(dst []byte, m *message, name string, last []byte, n int) []byte {
	switch n {
	case 0:
		return dst
	case 1:
		dst = append(dst, last...)
		return append(dst, ", "...)
	}
	for i := range m.headers {
		if equalFold(m.headers[i].name, name) {
			dst = append(dst, m.headers[i].value...)
			dst = append(dst, ", "...)
		}
	}
	return dst
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// respOpts are the balancer's changes to a response head.
type respOpts struct {
	keepAlive   bool   // the client connection stays open
	keepAlive10 bool   // and the client speaks HTTP/1.0, so say so
	chunk       bool   // the body is sent chunked
	cookie      []byte // a Set-Cookie value to add (the sticky pin)
}

// buildResponseHead appends the head sent to the client for the member's
// response r, complete with its empty line.
func buildResponseHead(dst []byte, r *message, o respOpts) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(r.status), 10)
	dst = append(dst, ' ')
	dst = append(dst, r.reason...)
	dst = append(dst, "\r\n"...)
	for i := range r.headers {
		f := &r.headers[i]
		if r.hopByHop(f.name) {
			continue
		}
		if o.chunk && len(f.name) == 14 && equalFold(f.name, "content-length") {
			continue
		}
		dst = append(dst, f.name...)
		dst = append(dst, ": "...)
		dst = append(dst, f.value...)
		dst = append(dst, "\r\n"...)
	}
	if o.chunk {
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	if o.cookie != nil {
		dst = append(dst, "Set-Cookie: "...)
		dst = append(dst, o.cookie...)
		dst = append(dst, "\r\n"...)
	}
	switch {
	case r.status == 101:
		dst = append(dst, "Connection: Upgrade\r\n"...)
	case !o.keepAlive:
		dst = append(dst, "Connection: close\r\n"...)
	case o.keepAlive10:
		dst = append(dst, "Connection: keep-alive\r\n"...)
	}
	return append(dst, "\r\n"...)
}
