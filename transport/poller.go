package transport

import "errors"

// Parker is a Conn that can wait for its next message without a goroutine
// blocked in Recv: a server with many idle connections (PEs that speak
// once per keep-alive interval) parks them on a Poller and serves each
// again when it has something to read. Plain TCP connections on Linux
// park; others (TLS, SCTP, other systems) return false from Park and are
// read as before.
type Parker interface {
	// RequestPark makes a Recv that is waiting with nothing received
	// (no part of a message buffered) return ErrParked, now or when it
	// next waits. Safe from any goroutine.
	RequestPark()
	// Park hands the connection, with no Recv in progress, to p until it
	// has something to read, is closed or its read timeout passes; then
	// wake runs once, on p's goroutine (it must not block: it starts the
	// goroutine that reads). False: the connection cannot park now (part
	// of a message buffered, closed, p stopped, unsupported); nothing
	// was handed over.
	Park(p *Poller, wake func()) bool
}

// errPollerStopped: the poller's Run has ended.
var errPollerStopped = errors.New("transport: poller stopped")
