package balancer

import (
	"bytes"
	"errors"
)

// This file parses HTTP/1.x message heads in place, per RFC 9112. The parser
// is deliberately strict where lenience lets two parsers disagree about where
// a message ends (request smuggling): both Content-Length and
// Transfer-Encoding, duplicate Content-Length, a transfer coding other than
// chunked, obs-fold continuation lines, whitespace before a field's colon and
// bare CR are all refused with 400 rather than forwarded.

// errMalformed and friends say why a message head was refused.
var (
	errMalformed     = errors.New("malformed request")
	errHeaderTooBig  = errors.New("request header too large")
	errUnsupportedTE = errors.New("unsupported transfer-encoding")
)

// message is a parsed request or response head. Its slices point into the
// buffer it was parsed from.
type message struct {
	Request // method, target and header fields, for requests

	status        int    // responses: the status code
	reason        []byte // responses: the reason phrase
	http11        bool   // HTTP/1.1 (else 1.0)
	headLen       int    // bytes up to and including the blank line
	contentLength int64  // -1 when absent
	chunked       bool
	connClose     bool // Connection: close (or HTTP/1.0 without keep-alive)
	keepAlive10   bool // HTTP/1.0 with Connection: keep-alive
	upgrade       bool // Connection: upgrade with an Upgrade field
	expect100     bool
	hasHost       bool
	// connTokens holds the Connection field's other tokens: fields they
	// name are hop-by-hop and not forwarded.
	connTokens [][]byte
}

func (m *message) reset() {
	hdrs, toks := m.headers[:0], m.connTokens[:0]
	*m = message{}
	m.headers, m.connTokens = hdrs, toks
	m.contentLength = -1
}

// headEnd returns the length of the message head at the start of buf (up to
// and including the empty line), or -1 when buf does not hold all of it yet.
// from is where the previous, unsuccessful search stopped.
func headEnd(buf []byte, from int) int {
	if from > 3 {
		from -= 3
	} else {
		from = 0
	}
	for {
		i := bytes.IndexByte(buf[from:], '\n')
		if i < 0 {
			return -1
		}
		i += from
		// An empty line is "\n" right after the previous "\n" (after an
		// optional CR).
		if i >= 1 && buf[i-1] == '\n' {
			return i + 1
		}
		if i >= 2 && buf[i-1] == '\r' && buf[i-2] == '\n' {
			return i + 1
		}
		if i == 0 || (i == 1 && buf[0] == '\r') {
			return i + 1 // an empty line at the very start
		}
		from = i + 1
	}
}

// nextLine splits the first line off b, accepting CRLF or a bare LF as its
// end. A CR anywhere else is an error.
func nextLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, rest, true
}

// parseRequestHead parses the request head head (as delimited by headEnd)
// into m.
func parseRequestHead(head []byte, m *message) error {
	m.reset()
	m.headLen = len(head)
	line, rest, ok := nextLine(head)
	if !ok {
		return errMalformed
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errMalformed
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return errMalformed
	}
	sp2 += sp1 + 1
	m.Method, m.Target = line[:sp1], line[sp1+1:sp2]
	if !isToken(m.Method) || !validTarget(m.Target) {
		return errMalformed
	}
	switch string(line[sp2+1:]) {
	case "HTTP/1.1":
		m.http11 = true
	case "HTTP/1.0":
	default:
		return errMalformed
	}
	if err := parseFields(rest, m); err != nil {
		return err
	}
	if m.http11 && !m.hasHost {
		return errMalformed // RFC 9112 section 3.2
	}
	if m.chunked && !m.http11 {
		return errMalformed
	}
	if !m.http11 && !m.keepAlive10 {
		m.connClose = true
	}
	return nil
}

// parseResponseHead parses a response head from a pool member into m.
func parseResponseHead(head []byte, m *message) error {
	m.reset()
	m.headLen = len(head)
	line, rest, ok := nextLine(head)
	if !ok || len(line) < 12 || line[8] != ' ' {
		return errMalformed
	}
	switch string(line[:8]) {
	case "HTTP/1.1":
		m.http11 = true
	case "HTTP/1.0":
	default:
		return errMalformed
	}
	code := line[9:12]
	if code[0] < '1' || code[0] > '5' || !isDigit(code[1]) || !isDigit(code[2]) {
		return errMalformed
	}
	m.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if len(line) > 12 {
		if line[12] != ' ' {
			return errMalformed
		}
		m.reason = line[13:]
	}
	if err := parseFields(rest, m); err != nil {
		return err
	}
	if !m.http11 && !m.keepAlive10 {
		m.connClose = true
	}
	return nil
}

// parseFields parses header field lines up to the empty line, recording
// the fields that frame the message.
func parseFields(b []byte, m *message) error {
	var teSeen bool
	for {
		line, rest, ok := nextLine(b)
		if !ok {
			return errMalformed
		}
		b = rest
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errMalformed // obs-fold, RFC 9112 section 5.2
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return errMalformed // includes whitespace before the colon
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validFieldValue(value) {
			return errMalformed
		}
		m.headers = append(m.headers, headerField{name: name, value: value})
		if err := m.noteField(name, value, &teSeen); err != nil {
			return err
		}
	}
	if teSeen && m.contentLength >= 0 {
		if m.status == 0 {
			return errMalformed // a request with both: refuse
		}
		m.contentLength = -1 // a response: Transfer-Encoding wins (RFC 9112 6.3)
		m.connClose = true
	}
	return nil
}

// noteField records what a framing or connection field means.
func (m *message) noteField(name, value []byte, teSeen *bool) error {
	switch len(name) {
	case 4:
		if equalFold(name, "host") {
			if m.hasHost {
				return errMalformed
			}
			m.hasHost = true
		}
	case 6:
		if equalFold(name, "expect") && asciiEqualFold(value, "100-continue") {
			m.expect100 = true
		}
	case 10:
		if equalFold(name, "connection") {
			m.noteConnection(value)
		}
	case 14:
		if equalFold(name, "content-length") {
			if m.contentLength >= 0 {
				return errMalformed // duplicate Content-Length
			}
			n, ok := parseContentLength(value)
			if !ok {
				return errMalformed
			}
			m.contentLength = n
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			if *teSeen || !asciiEqualFold(value, "chunked") {
				if m.status != 0 {
					// A response in an unknown coding: read to close.
					*teSeen, m.chunked, m.connClose = true, false, true
					return nil
				}
				return errUnsupportedTE
			}
			*teSeen, m.chunked = true, true
		}
	}
	return nil
}

// noteConnection parses the Connection field's comma-separated tokens.
func (m *message) noteConnection(v []byte) {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = trimOWS(v[:i]), v[i+1:]
		} else {
			tok, v = trimOWS(v), nil
		}
		switch {
		case len(tok) == 0:
		case asciiEqualFold(tok, "close"):
			m.connClose = true
		case asciiEqualFold(tok, "keep-alive"):
			m.keepAlive10 = true
		case asciiEqualFold(tok, "upgrade"):
			m.upgrade = true
		default:
			m.connTokens = append(m.connTokens, tok)
		}
	}
}

// parseContentLength accepts 1 to 18 decimal digits and nothing else.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// tokenChars marks the tchar set of RFC 9110 section 5.6.2.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// validTarget refuses control characters and spaces in a request-target.
func validTarget(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validFieldValue refuses control characters other than HTAB (RFC 9110 5.5).
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// asciiEqualFold compares b with the lower-case string s ignoring case.
func asciiEqualFold(b []byte, s string) bool { return equalFold(b, s) }

// hopByHop reports whether a field is hop-by-hop and so not forwarded
// (RFC 9110 section 7.6.1), including fields the balancer rewrites itself.
func (m *message) hopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 6:
		return equalFold(name, "expect") && m.expect100
	case 7:
		return equalFold(name, "trailer") || (equalFold(name, "upgrade") && !m.upgrade)
	case 10:
		return equalFold(name, "connection") || equalFold(name, "keep-alive")
	case 16:
		return equalFold(name, "proxy-connection")
	case 17:
		return equalFold(name, "transfer-encoding")
	case 18:
		return equalFold(name, "proxy-authenticate")
	case 19:
		return equalFold(name, "proxy-authorization")
	}
	for _, t := range m.connTokens {
		if bytes.EqualFold(t, name) {
			return true
		}
	}
	return false
}
