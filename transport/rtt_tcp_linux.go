//go:build linux

package transport

import (
	"time"

	"golang.org/x/sys/unix"
)

// RTT is the kernel's smoothed round-trip time of the TCP connection
// (TCP_INFO tcpi_rtt); see the package function RTT.
func (c *tcpConn) RTT() (time.Duration, bool) {
	if c.raw == nil {
		return 0, false
	}
	var info *unix.TCPInfo
	var err error
	if cerr := c.raw.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); cerr != nil || err != nil {
		return 0, false
	}
	return time.Duration(info.Rtt) * time.Microsecond, true
}
