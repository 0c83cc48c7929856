package transport

import "errors"

// Sentinel errors. Functions wrap them with context ("tcp: recv from
// 127.0.0.1:3863: %w"), so test for them with errors.Is.
var (
	// ErrClosed is returned by operations on a Conn, Listener or Multicast
	// that this side has closed.
	ErrClosed = errors.New("transport: closed")

	// ErrMessageTooLarge is returned by Send for a message longer than
	// Config.MaxMessageSize (or than the 16-bit length a TCP frame can carry),
	// and by Recv when the peer sent one; in the Recv case the connection has
	// been closed.
	ErrMessageTooLarge = errors.New("message too large")

	// ErrBadFrame is returned by Recv when a TCP frame header is invalid (a
	// length below the header size, a reserved mux byte that is not zero);
	// the connection has been closed. Send returns it for a message whose own
	// ASAP/ENRP length field does not match its size, because on TCP such a
	// message would desynchronise the stream.
	ErrBadFrame = errors.New("bad frame")

	// ErrReadTimeout is returned by Recv when no complete message arrived
	// within Config.ReadTimeout; the connection has been closed.
	ErrReadTimeout = errors.New("read idle timeout")

	// ErrParked is returned by Recv after Parker.RequestPark, instead of
	// waiting on with nothing received; the connection is intact: Park it
	// or call Recv again.
	ErrParked = errors.New("connection parked")

	// ErrNoSCTP is returned for an explicit sctp: address when the kernel has
	// no SCTP support (socket(2) fails with EPROTONOSUPPORT).
	ErrNoSCTP = errors.New("kernel has no SCTP support (protocol not supported); use tcp: or an auto address")

	// ErrBadSpec is returned by ParseSpec and ParseMulticastSpec for an
	// address spec they cannot parse.
	ErrBadSpec = errors.New("bad address spec")

	// ErrBadPPID is returned by Send on a plain (non-mux) TCP connection for a
	// PPID other than the one the connection was configured with: plain TCP
	// cannot carry the PPID on the wire.
	ErrBadPPID = errors.New("ppid not carried by this connection")

	// ErrConnRefused is returned by MemNetwork.Dial when nothing listens on
	// the name.
	ErrConnRefused = errors.New("connection refused")

	// ErrMulticastOff is returned by Multicast.Recv on a Multicast opened
	// with the spec "off" (whose Send drops what it is given), so receive
	// loops end at once.
	ErrMulticastOff = errors.New("multicast is off")
)
