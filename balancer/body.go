package balancer

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"time"
)

// copyError tells which side of a body copy failed.
type copyError struct {
	read bool // reading the source failed (else writing the destination)
	err  error
}

func (e copyError) Error() string {
	if e.read {
		return "reading body: " + e.err.Error()
	}
	return "writing body: " + e.err.Error()
}

func (e copyError) Unwrap() error { return e.err }

var errBadChunk = errors.New("malformed chunked encoding")

// fillWait prepares a read of src that will reach the network: it first
// flushes dst, so whatever has arrived is passed on without waiting for
// more (streaming), and sets the inactivity deadline on the source.
func fillWait(dst *bufio.Writer, src *bufio.Reader, conn *deadlineConn, timeout time.Duration) error {
	if src.Buffered() > 0 {
		return nil
	}
	if dst.Buffered() > 0 {
		if err := dst.Flush(); err != nil {
			return copyError{read: false, err: err}
		}
	}
	conn.setReadDeadline(time.Now().Add(timeout))
	return nil
}

// deadlineConn is a connection that remembers the read deadline it last
// set, so a request path that wants nearly the same deadline again (the
// next keep-alive request's) skips the call: each SetReadDeadline moves a
// runtime timer, and most requests would only nudge it by milliseconds.
type deadlineConn struct {
	net.Conn
	rd int64 // the read deadline last set, Unix nanoseconds; 0 if unknown
}

// deadlineSlack is how much earlier than asked a kept deadline may fire.
const deadlineSlack = int64(250 * time.Millisecond)

// setReadDeadline sets the read deadline to t unless the one set last is
// within deadlineSlack before it (never after it: a kept deadline may only
// make a timeout slightly shorter, not longer).
func (c *deadlineConn) setReadDeadline(t time.Time) {
	want := t.UnixNano()
	if d := want - c.rd; c.rd != 0 && d >= 0 && d < deadlineSlack {
		return
	}
	c.rd = want
	c.Conn.SetReadDeadline(t)
}

// forgetDeadline is called after someone else moved the deadline.
func (c *deadlineConn) forgetDeadline() { c.rd = 0 }

// copyN copies exactly n body bytes from src to dst, reading straight into
// dst's buffer.
func copyN(dst *bufio.Writer, src *bufio.Reader, conn *deadlineConn, n int64, timeout time.Duration) error {
	for n > 0 {
		if err := fillWait(dst, src, conn, timeout); err != nil {
			return err
		}
		buf := dst.AvailableBuffer()
		if cap(buf) == 0 {
			if err := dst.Flush(); err != nil {
				return copyError{read: false, err: err}
			}
			continue
		}
		buf = buf[:min(int64(cap(buf)), n)]
		k, err := src.Read(buf)
		if k > 0 {
			dst.Write(buf[:k])
			n -= int64(k)
		}
		if err != nil && n > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return copyError{read: true, err: err}
		}
	}
	return nil
}

// copyToEOF copies a close-delimited body, chunk-encoding it when chunk is
// set (so an HTTP/1.1 client's connection can stay open).
func copyToEOF(dst *bufio.Writer, src *bufio.Reader, conn *deadlineConn, timeout time.Duration, chunk bool) error {
	var buf [8 << 10]byte
	for {
		if err := fillWait(dst, src, conn, timeout); err != nil {
			return err
		}
		k, err := src.Read(buf[:])
		if k > 0 {
			if chunk {
				writeChunkHeader(dst, int64(k))
			}
			dst.Write(buf[:k])
			if chunk {
				dst.WriteString("\r\n")
			}
		}
		if err == io.EOF {
			if chunk {
				dst.WriteString("0\r\n\r\n")
			}
			return nil
		}
		if err != nil {
			return copyError{read: true, err: err}
		}
	}
}

// copyChunked copies a chunked body, checking its framing strictly. With
// reencode the chunks are written out chunked again (chunk extensions and
// trailer fields dropped); without, the decoded data is written raw (for
// an HTTP/1.0 client, whose connection then closes).
func copyChunked(dst *bufio.Writer, src *bufio.Reader, conn *deadlineConn, timeout time.Duration, reencode bool) error {
	for {
		line, err := readLine(dst, src, conn, timeout)
		if err != nil {
			return err
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return copyError{read: true, err: errBadChunk}
		}
		if size == 0 {
			if err := skipTrailers(dst, src, conn, timeout); err != nil {
				return err
			}
			if reencode {
				dst.WriteString("0\r\n\r\n")
			}
			return nil
		}
		if reencode {
			writeChunkHeader(dst, size)
		}
		if err := copyN(dst, src, conn, size, timeout); err != nil {
			return err
		}
		line, err = readLine(dst, src, conn, timeout)
		if err != nil {
			return err
		}
		if len(line) != 0 {
			return copyError{read: true, err: errBadChunk}
		}
		if reencode {
			dst.WriteString("\r\n")
		}
	}
}

// readLine reads one line of chunked framing without its line end.
func readLine(dst *bufio.Writer, src *bufio.Reader, conn *deadlineConn, timeout time.Duration) ([]byte, error) {
	if err := fillWait(dst, src, conn, timeout); err != nil {
		return nil, err
	}
	line, err := src.ReadSlice('\n')
	if err != nil {
		if err == io.EOF || err == bufio.ErrBufferFull {
			err = errBadChunk
		}
		return nil, copyError{read: true, err: err}
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

func skipTrailers(dst *bufio.Writer, src *bufio.Reader, conn *deadlineConn, timeout time.Duration) error {
	for i := 0; ; i++ {
		line, err := readLine(dst, src, conn, timeout)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if i > 64 {
			return copyError{read: true, err: errBadChunk}
		}
	}
}

// parseChunkSize parses "hex[;ext]" strictly: 1 to 15 hex digits, and
// an extension free of control characters.
func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, false
	}
	if i < len(line) {
		if line[i] != ';' && line[i] != ' ' && line[i] != '\t' {
			return 0, false
		}
		if !validFieldValue(line[i:]) {
			return 0, false
		}
	}
	return n, true
}

func writeChunkHeader(dst *bufio.Writer, n int64) {
	var b [20]byte
	dst.Write(strconv.AppendInt(b[:0], n, 16))
	dst.WriteString("\r\n")
}
