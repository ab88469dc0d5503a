package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Target is one request to send: method, absolute http or https URL,
// headers and body. The generator copies what it needs; the caller keeps
// ownership of Header and Body.
type Target struct {
	// Method is the HTTP method. If empty, GET is used.
	Method string
	// URL is the absolute http:// or https:// URL.
	URL string
	// Header holds extra request headers. A Host header replaces the
	// URL's host in the Host field. Content-Length and Connection are set
	// by the generator and may not be given.
	Header http.Header
	// Body is the request body, sent with a Content-Length.
	Body []byte
}

// request is a Target serialized once into the bytes put on the wire.
type request struct {
	wire     []byte
	head     bool // HEAD: the response has no body
	endpoint int  // index into Generator.endpoints
}

// compile checks t and serializes it (RFC 9112 section 3) for reuse by every
// request that goes to it.
func (t Target) compile(keepAlive bool) (*endpoint, request, error) {
	method := t.Method
	if method == "" {
		method = http.MethodGet
	}
	if !isToken(method) {
		return nil, request{}, fmt.Errorf("method %q is not a valid HTTP method token", method)
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, request{}, fmt.Errorf("url %q: %w", t.URL, err)
	}
	ep := &endpoint{hostname: u.Hostname()}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		ep.tls = true
		if port == "" {
			port = "443"
		}
	default:
		return nil, request{}, fmt.Errorf("url %q: scheme must be http or https", t.URL)
	}
	if ep.hostname == "" {
		return nil, request{}, fmt.Errorf("url %q: no host", t.URL)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, request{}, fmt.Errorf("url %q: bad port %q", t.URL, port)
	}
	ep.addr = net.JoinHostPort(ep.hostname, port)

	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, u.RequestURI())
	host := u.Host
	if h := t.Header.Get("Host"); h != "" {
		if strings.ContainsAny(h, "\r\n\x00") {
			return nil, request{}, errors.New("header Host: value contains a line break or NUL")
		}
		host = h
	}
	fmt.Fprintf(&b, "Host: %s\r\n", host)
	if t.Header.Get("User-Agent") == "" {
		b.WriteString("User-Agent: scaleout-loadgen\r\n")
	}
	for name, values := range t.Header {
		if !isToken(name) {
			return nil, request{}, fmt.Errorf("header name %q is not a valid token", name)
		}
		switch http.CanonicalHeaderKey(name) {
		case "Host":
			continue
		case "Content-Length", "Connection", "Transfer-Encoding":
			return nil, request{}, fmt.Errorf("header %s is set by the generator", name)
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, request{}, fmt.Errorf("header %s: value contains a line break or NUL", name)
			}
			fmt.Fprintf(&b, "%s: %s\r\n", name, v)
		}
	}
	if len(t.Body) > 0 || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(t.Body))
	}
	if !keepAlive {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	b.Write(t.Body)
	return ep, request{wire: []byte(b.String()), head: method == http.MethodHead}, nil
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// ErrBadTargets is wrapped by ParseTargets' errors, which also name the line.
var ErrBadTargets = errors.New("bad targets file")

// maxTargets bounds a targets file so a huge one is an error, not an
// unbounded allocation.
const maxTargets = 10000

// ParseTargets reads targets in this format, meant to be written by hand:
//
//	# a comment
//	GET http://127.0.0.1:8080/flights
//	Accept: application/json
//
//	POST http://127.0.0.1:8080/bookings
//	Content-Type: application/json
//	> {"flight": 1}
//
// A target starts with "METHOD URL" and runs to a blank line or the next
// request line; "Name: value" lines are headers; lines starting with "> "
// are the body, joined by newlines. Each target is checked as New would;
// errors wrap ErrBadTargets and name the line.
func ParseTargets(r io.Reader) ([]Target, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var (
		targets []Target
		cur     *Target
		body    []string
		lineNo  int
		start   int
	)
	finish := func() error {
		if cur == nil {
			return nil
		}
		if body != nil {
			cur.Body = []byte(strings.Join(body, "\n"))
		}
		if _, _, err := cur.compile(true); err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrBadTargets, start, err)
		}
		targets = append(targets, *cur)
		cur, body = nil, nil
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "#"):
		case trimmed == "":
			if err := finish(); err != nil {
				return nil, err
			}
		case strings.HasPrefix(line, ">"):
			if cur == nil {
				return nil, fmt.Errorf("%w: line %d: body line before any request line", ErrBadTargets, lineNo)
			}
			body = append(body, strings.TrimPrefix(strings.TrimPrefix(line, ">"), " "))
		case isRequestLine(trimmed):
			if err := finish(); err != nil {
				return nil, err
			}
			if len(targets) >= maxTargets {
				return nil, fmt.Errorf("%w: more than %d targets", ErrBadTargets, maxTargets)
			}
			method, u, _ := strings.Cut(trimmed, " ")
			cur, start = &Target{Method: method, URL: strings.TrimSpace(u)}, lineNo
		default:
			name, value, ok := strings.Cut(trimmed, ":")
			if cur == nil || !ok || body != nil {
				return nil, fmt.Errorf("%w: line %d: want \"METHOD URL\", \"Name: value\" or \"> body\", got %q", ErrBadTargets, lineNo, clipString(trimmed))
			}
			if cur.Header == nil {
				cur.Header = http.Header{}
			}
			cur.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %w", ErrBadTargets, lineNo+1, err)
	}
	if err := finish(); err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: no target in it", ErrBadTargets)
	}
	return targets, nil
}

// isRequestLine reports whether line looks like "METHOD http(s)://...".
func isRequestLine(line string) bool {
	method, rest, ok := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	return ok && isToken(method) && (strings.HasPrefix(rest, "http://") || strings.HasPrefix(rest, "https://"))
}

func clipString(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
