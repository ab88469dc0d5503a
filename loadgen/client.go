package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Why a client of our own instead of net/http: measured on the 2-core
// development machine against the same net/http "hello" target, wrk -t2 -c50
// reached 33-43k req/s while 50 goroutines sharing one net/http.Client
// reached 19-20k req/s (0.5x). net/http pays for a goroutine pair per
// connection, a per-request Request/Response/Header allocation and a channel
// handoff between the caller and the connection's reader. A load generator
// shares the CPU with the server it measures, so every microsecond it spends
// is taken from the server. This client is the minimum HTTP/1.1 (RFC 9112)
// needs: one keep-alive net.Conn per worker, the request serialized once per
// target, and a response parser that reads the status line and the three
// headers that frame the message (Content-Length, Transfer-Encoding,
// Connection) and discards the body without copying it out of the bufio
// buffer.

// readBufferSize is each connection's read buffer. A status or header line
// must fit in it: a longer one is a protocol error, not an unbounded read.
const readBufferSize = 32 << 10

// Errors of the response parser, wrapped with the detail that was wrong.
var (
	errMalformed   = errors.New("malformed HTTP response")
	errLineTooLong = errors.New("response line too long")
)

// conn is one HTTP/1.1 connection owned by a single worker; it is not safe
// for concurrent use.
type conn struct {
	nc       net.Conn
	br       *bufio.Reader
	deadline time.Time // the deadline last set on nc
}

// deadlineSlack is how much earlier than asked a request's deadline may
// fall. Moving a connection's deadline costs two poller timer updates per
// request; on a keep-alive connection answering quickly, the deadline is
// moved only when it would move by more than 1/16 of the timeout, so a
// request may time out up to ~6% before Config.Timeout, never after.
const deadlineSlack = 16

// response is what the generator keeps of an HTTP response.
type response struct {
	status int
	bytes  int64 // bytes read off the wire for this response, head and body
	close  bool  // the connection cannot carry another request
}

// dial opens a connection to ep, with TLS when ep asks for it.
func dial(ctx context.Context, ep *endpoint, timeout time.Duration, tlsConf *tls.Config) (*conn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", ep.addr)
	if err != nil {
		return nil, err
	}
	if ep.tls {
		conf := tlsConf.Clone()
		if conf == nil {
			conf = &tls.Config{}
		}
		if conf.ServerName == "" {
			conf.ServerName = ep.hostname
		}
		tc := tls.Client(nc, conf)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		nc = tc
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, readBufferSize)}, nil
}

// roundTrip writes the pre-serialized request req and reads its response,
// with the deadline sent+timeout (see deadlineSlack). head says the request
// was HEAD, whose response has no body. Errors are classified by kindOf.
func (c *conn) roundTrip(req []byte, head bool, sent time.Time, timeout time.Duration) (response, error) {
	deadline := sent.Add(timeout)
	if c.deadline.IsZero() || deadline.Sub(c.deadline) > timeout/deadlineSlack {
		if err := c.nc.SetDeadline(deadline); err != nil {
			return response{}, &opError{kind: KindWrite, err: err}
		}
		c.deadline = deadline
	}
	if _, err := c.nc.Write(req); err != nil {
		return response{}, &opError{kind: KindWrite, err: err}
	}
	return readResponse(c.br, head)
}

func (c *conn) close() { c.nc.Close() }

// readResponse reads one response from br and discards its body, following
// RFC 9112 section 6.3 for the body length: no body for HEAD, 1xx, 204 and
// 304; chunked when Transfer-Encoding ends in chunked; else Content-Length;
// else the body runs to the end of the connection.
func readResponse(br *bufio.Reader, head bool) (response, error) {
	var resp response
	for {
		h, err := readHead(br, &resp)
		if err != nil {
			return resp, err
		}
		if resp.status >= 100 && resp.status < 200 && resp.status != 101 {
			continue // an interim response (100 Continue, 103 Early Hints): the final one follows
		}
		var n int64
		switch {
		case head || resp.status == 204 || resp.status == 304 || resp.status == 101:
		case h.chunked:
			n, err = discardChunked(br)
		case h.contentLength >= 0:
			var d int
			d, err = br.Discard(int(h.contentLength))
			n = int64(d)
		default:
			resp.close = true
			n, err = io.Copy(io.Discard, br)
		}
		resp.bytes += n
		if err != nil {
			return resp, readError(err)
		}
		return resp, nil
	}
}

// head holds the framing headers of one response.
type head struct {
	contentLength int64 // -1 when absent
	chunked       bool
}

// readHead reads a status line and header block into resp and returns the
// framing it found.
func readHead(br *bufio.Reader, resp *response) (head, error) {
	h := head{contentLength: -1}
	line, err := readLine(br, resp)
	if err != nil {
		return h, err
	}
	// "HTTP/1.1 200 OK": version, space, three digits, then space or end.
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') {
		return h, &opError{kind: KindProtocol, err: fmt.Errorf("%w: status line %q", errMalformed, clip(line))}
	}
	status := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return h, &opError{kind: KindProtocol, err: fmt.Errorf("%w: status code %q", errMalformed, line[9:12])}
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 {
		return h, &opError{kind: KindProtocol, err: fmt.Errorf("%w: status code %d", errMalformed, status)}
	}
	resp.status = status
	keepAlive10 := false
	http10 := line[7] == '0'
	for {
		line, err := readLine(br, resp)
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return h, &opError{kind: KindProtocol, err: fmt.Errorf("%w: header line %q", errMalformed, clip(line))}
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			n, ok := parseDecimal(value)
			if !ok || (h.contentLength >= 0 && n != h.contentLength) {
				return h, &opError{kind: KindProtocol, err: fmt.Errorf("%w: Content-Length %q", errMalformed, clip(value))}
			}
			h.contentLength = n
		case asciiEqualFold(name, "transfer-encoding"):
			// The last coding decides (RFC 9112 section 6.3, item 4).
			h.chunked = hasSuffixFold(value, "chunked")
		case asciiEqualFold(name, "connection"):
			if containsTokenFold(value, "close") {
				resp.close = true
			}
			if containsTokenFold(value, "keep-alive") {
				keepAlive10 = true
			}
		}
	}
	if http10 && !keepAlive10 {
		resp.close = true
	}
	if h.chunked {
		h.contentLength = -1 // Transfer-Encoding overrides Content-Length.
	}
	return h, nil
}

// readLine returns the next line without its CRLF (or bare LF). The slice
// aliases br's buffer and is valid until the next read.
func readLine(br *bufio.Reader, resp *response) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	resp.bytes += int64(len(line))
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, &opError{kind: KindProtocol, err: errLineTooLong}
		}
		return nil, readError(err)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// discardChunked reads a chunked body (RFC 9112 section 7.1) and its
// trailer section, returning the bytes read.
func discardChunked(br *bufio.Reader) (int64, error) {
	var resp response
	for {
		line, err := readLine(br, &resp)
		if err != nil {
			return resp.bytes, err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions are ignored
		}
		size, ok := parseHex(bytes.TrimSpace(line))
		if !ok {
			return resp.bytes, &opError{kind: KindProtocol, err: fmt.Errorf("%w: chunk size %q", errMalformed, clip(line))}
		}
		if size == 0 {
			for { // trailer section, up to the empty line
				line, err := readLine(br, &resp)
				if err != nil {
					return resp.bytes, err
				}
				if len(line) == 0 {
					return resp.bytes, nil
				}
			}
		}
		d, err := br.Discard(int(size))
		resp.bytes += int64(d)
		if err != nil {
			return resp.bytes, readError(err)
		}
		crlf, err := readLine(br, &resp)
		if err != nil {
			return resp.bytes, err
		}
		if len(crlf) != 0 {
			return resp.bytes, &opError{kind: KindProtocol, err: fmt.Errorf("%w: chunk not followed by CRLF", errMalformed)}
		}
	}
}

// readError classifies an error from reading: a deadline is a timeout, an
// early end of the stream or anything else is a read error.
func readError(err error) error {
	var oe *opError
	if errors.As(err, &oe) {
		return err
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &opError{kind: KindRead, err: err}
}

// parseDecimal parses a non-negative decimal of at most 18 digits.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseHex parses a chunk size of at most 15 hex digits (so it fits an int).
func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// asciiEqualFold reports whether b equals the lower-case ASCII s, ignoring case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

func hasSuffixFold(b []byte, s string) bool {
	return len(b) >= len(s) && asciiEqualFold(b[len(b)-len(s):], s)
}

// containsTokenFold reports whether the comma-separated list b holds the
// lower-case token s.
func containsTokenFold(b []byte, s string) bool {
	for len(b) > 0 {
		var tok []byte
		if i := bytes.IndexByte(b, ','); i >= 0 {
			tok, b = b[:i], b[i+1:]
		} else {
			tok, b = b, nil
		}
		if asciiEqualFold(bytes.TrimSpace(tok), s) {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
