//go:build linux && !386

package transport

import (
	"time"

	"github.com/ishidawataru/sctp"
)

// RTT is the smoothed round-trip time of the association's primary path
// (SCTP_STATUS sstat_primary.spinfo_srtt, milliseconds), as RSPLIB's
// registrar reads it; see the package function RTT.
func (c *sctpConn) RTT() (time.Duration, bool) {
	if c.closed.Load() {
		return 0, false
	}
	var st *sctp.Status
	var err error
	if cerr := c.rc.Control(func(fd uintptr) {
		st, err = sctp.NewSCTPConn(int(fd), nil).GetStatus()
	}); cerr != nil || err != nil {
		return 0, false
	}
	return time.Duration(st.PrimaryPeerAddr.SRTT) * time.Millisecond, true
}
