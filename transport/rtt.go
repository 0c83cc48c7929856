package transport

import "time"

// RTT returns the smoothed round-trip time the kernel measured for the
// connection, for a registrar's distance to a PE (RSPLIB measures it the
// same way): for SCTP the primary path's SRTT (SCTP_STATUS, millisecond
// resolution), for TCP the kernel's estimate (TCP_INFO tcpi_rtt,
// microseconds). ok is false when the connection has none: the in-memory
// pipe, a closed connection, a system other than Linux.
//
// A Conn of another package can offer one by implementing
// RTT() (time.Duration, bool).
func RTT(c Conn) (rtt time.Duration, ok bool) {
	if r, ok := c.(interface{ RTT() (time.Duration, bool) }); ok {
		return r.RTT()
	}
	return 0, false
}
