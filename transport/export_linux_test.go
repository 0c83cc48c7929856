package transport

// HoldsRecvBuffer reports whether an SCTP Conn keeps a receive buffer.
// Call it only while no Recv is in progress.
func HoldsRecvBuffer(c Conn) bool {
	return c.(*sctpConn).rbuf != nil
}
