package balancer

import (
	"syscall"
)

// alive reports whether a pooled member connection still looks open: no
// unexpected bytes and no EOF waiting. It peeks at the socket without
// blocking, so a non-idempotent request is not written onto a connection
// the member has already closed (which would leave its fate unknown).
func (c *backendConn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true
	})
	return err == nil && alive
}
