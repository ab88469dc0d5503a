//go:build !linux

package balancer

// alive cannot peek at the socket here; the connection is assumed open.
func (c *backendConn) alive() bool { return c.br.Buffered() == 0 }
