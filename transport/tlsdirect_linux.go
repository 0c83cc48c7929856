//go:build linux

package transport

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tlsRawConn returns the RawConn of the TCP socket under a TLS
// connection and its send buffer size (SO_SNDBUF), or nil when nc is not
// TLS over TCP.
func tlsRawConn(nc net.Conn) (syscall.RawConn, int) {
	type netConner interface{ NetConn() net.Conn }
	ncr, ok := nc.(netConner)
	if !ok {
		return nil, 0
	}
	tc, ok := ncr.NetConn().(*net.TCPConn)
	if !ok {
		return nil, 0
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, 0
	}
	var sndbuf int
	var serr error
	if cerr := raw.Control(func(fd uintptr) {
		sndbuf, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	}); cerr != nil || serr != nil || sndbuf <= 0 {
		return nil, 0
	}
	return raw, sndbuf
}

// sendRoom reports whether the kernel's send buffer of the TCP socket
// under a TLS connection has room for n more bytes with a wide margin, so
// that a blocking write of n bytes returns without waiting: the bytes
// queued and not yet acknowledged (SIOCOUTQ) plus n stay under half of
// SO_SNDBUF as it was when the connection was set up (the kernel counts
// its buffer overhead against SO_SNDBUF too; autotuning only raises it).
func (c *tcpConn) sendRoom(n int) bool {
	if c.tlsRaw == nil {
		return false
	}
	queued := -1
	if cerr := c.tlsRaw.Control(func(fd uintptr) {
		v, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		if err == nil {
			queued = v
		}
	}); cerr != nil || queued < 0 {
		return false
	}
	return queued+n <= c.tlsSndbuf/2
}
