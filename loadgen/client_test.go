package loadgen

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		wire       string
		head       bool
		wantStatus int
		wantClose  bool
		wantKind   string // "" for no error
		wantRest   string // what must be left unread: the next response
	}{
		{name: "content-length", wire: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT", wantStatus: 200, wantRest: "NEXT"},
		{name: "header case", wire: "HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh:  3 \r\n\r\nabcNEXT", wantStatus: 200, wantRest: "NEXT"},
		{name: "bare LF", wire: "HTTP/1.1 200 OK\nContent-Length: 2\n\nabNEXT", wantStatus: 200, wantRest: "NEXT"},
		{name: "no reason phrase", wire: "HTTP/1.1 204\r\n\r\nNEXT", wantStatus: 204, wantRest: "NEXT"},
		{name: "chunked", wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\nNEXT", wantStatus: 200, wantRest: "NEXT"},
		{name: "chunked with trailers", wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\nNEXT", wantStatus: 200, wantRest: "NEXT"},
		{name: "chunked overrides length", wire: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nNEXT", wantStatus: 200, wantRest: "NEXT"},
		{name: "head has no body", wire: "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\nNEXT", head: true, wantStatus: 200, wantRest: "NEXT"},
		{name: "304 has no body", wire: "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\nNEXT", wantStatus: 304, wantRest: "NEXT"},
		{name: "interim 100 then final", wire: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\nNEXT", wantStatus: 201, wantRest: "NEXT"},
		{name: "connection close", wire: "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", wantStatus: 503, wantClose: true},
		{name: "http/1.0 closes", wire: "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", wantStatus: 200, wantClose: true},
		{name: "http/1.0 keep-alive", wire: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\nNEXT", wantStatus: 200, wantRest: "NEXT"},
		{name: "read to close", wire: "HTTP/1.1 200 OK\r\n\r\nall of this is body", wantStatus: 200, wantClose: true},
		{name: "truncated body", wire: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", wantStatus: 200, wantKind: KindRead},
		{name: "truncated chunk", wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", wantStatus: 200, wantKind: KindRead},
		{name: "empty", wire: "", wantKind: KindRead},
		{name: "not http", wire: "SSH-2.0-OpenSSH\r\n\r\n", wantKind: KindProtocol},
		{name: "bad status", wire: "HTTP/1.1 2x0 OK\r\n\r\n", wantKind: KindProtocol},
		{name: "bad length", wire: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantStatus: 200, wantKind: KindProtocol},
		{name: "conflicting lengths", wire: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", wantStatus: 200, wantKind: KindProtocol},
		{name: "bad chunk size", wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantStatus: 200, wantKind: KindProtocol},
		{name: "chunk without CRLF", wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n", wantStatus: 200, wantKind: KindProtocol},
		{name: "header without colon", wire: "HTTP/1.1 200 OK\r\nbroken\r\n\r\n", wantStatus: 200, wantKind: KindProtocol},
		{name: "huge header line", wire: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 40<<10) + "\r\n\r\n", wantStatus: 200, wantKind: KindProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			br := bufio.NewReaderSize(strings.NewReader(tt.wire), readBufferSize)
			resp, err := readResponse(br, tt.head)
			if resp.status != tt.wantStatus {
				t.Errorf("status: got %d, want %d", resp.status, tt.wantStatus)
			}
			if tt.wantKind != "" {
				var oe *opError
				if !errors.As(err, &oe) || oe.kind != tt.wantKind {
					t.Fatalf("error: got %v, want kind %s", err, tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if resp.close != tt.wantClose {
				t.Errorf("close: got %v, want %v", resp.close, tt.wantClose)
			}
			rest, _ := br.Peek(br.Buffered())
			if string(rest) != tt.wantRest {
				t.Errorf("left unread: got %q, want %q", rest, tt.wantRest)
			}
			if want := int64(len(tt.wire) - len(tt.wantRest)); resp.bytes != want {
				t.Errorf("bytes: got %d, want %d", resp.bytes, want)
			}
		})
	}
}

// FuzzReadResponse feeds arbitrary server output to the parser: it must
// return (an error or a response) without panicking or reading past what
// the framing allows.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: x\r\n\r\n"), false)
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 No\r\n\r\n"), true)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n"), false)
	f.Fuzz(func(t *testing.T, wire []byte, head bool) {
		br := bufio.NewReaderSize(strings.NewReader(string(wire)), readBufferSize)
		resp, err := readResponse(br, head)
		if resp.bytes < 0 || resp.bytes > int64(len(wire)) {
			t.Fatalf("bytes %d out of [0, %d]", resp.bytes, len(wire))
		}
		if err == nil && (resp.status < 100 || resp.status > 999) {
			t.Fatalf("accepted status %d", resp.status)
		}
	})
}
