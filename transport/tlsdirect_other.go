//go:build !linux

package transport

import (
	"net"
	"syscall"
)

// tlsRawConn: without SIOCOUTQ a TLS connection has no direct writes.
func tlsRawConn(net.Conn) (syscall.RawConn, int) { return nil, 0 }

// sendRoom: never, so TLS sends go through the writer goroutine.
func (c *tcpConn) sendRoom(int) bool { return false }
