package transport

import (
	"context"
	"net/netip"
)

// Conn is a message-oriented connection: every Send is delivered as one Recv
// on the other side, with its payload protocol identifier (PPID).
//
// Implementations: SCTP (one-to-one socket, PPID on the wire), TCP (messages
// framed back to back, PPID from Config), and the in-memory pipe.
type Conn interface {
	// Send queues msg, labelled with ppid, for delivery as one message. It
	// returns once the message is accepted for transmission: copied into the
	// connection's send buffer (TCP, pipe) or the kernel's (SCTP); a later
	// write failure closes the connection and is returned by later calls.
	// Send blocks while the send buffer is full (the peer is not reading)
	// and then returns ctx.Err() when ctx ends; a message is either accepted
	// whole or not at all; a ctx that is already done sends nothing. msg is
	// not retained: the caller may reuse it when Send returns.
	//
	// Safe for concurrent use; concurrent messages are not interleaved.
	Send(ctx context.Context, ppid uint32, msg []byte) error

	// Recv blocks until a whole message arrives and returns it with its
	// PPID. The returned slice belongs to the caller. When ctx ends (or is
	// already done) Recv returns ctx.Err() and the connection stays usable (a partly received
	// message is kept for the next call). Any other error is final: the
	// connection has been closed (io.EOF when the peer closed it between
	// messages; ErrBadFrame, ErrMessageTooLarge, ErrReadTimeout; ErrClosed
	// after Close).
	//
	// Safe for concurrent use, but calls are served one at a time; use one
	// reading goroutine.
	Recv(ctx context.Context) (ppid uint32, msg []byte, err error)

	// LocalAddr returns the local endpoint (for SCTP every local address
	// of the association). Safe for concurrent use.
	LocalAddr() Endpoint

	// RemoteAddr returns the remote endpoint (for SCTP every peer address
	// known when the connection was set up; PeerAddrs asks again). Safe
	// for concurrent use.
	RemoteAddr() Endpoint

	// PeerAddrs returns the peer's IP addresses: for SCTP every address of
	// the association's peer, asked from the kernel at each call; for TCP
	// the one remote IP; for a pipe the other end's Config.LocalAddrs (so a
	// test sets the dialer's LocalAddrs to give it addresses). IPv4-mapped
	// addresses are unmapped. Safe for concurrent use.
	PeerAddrs() []netip.Addr

	// Kind tells the transport in use. Safe for concurrent use.
	Kind() Kind

	// Close flushes messages already accepted by Send (bounded by
	// Config.WriteTimeout or Config.CloseLinger), closes the connection,
	// unblocks pending Recv and Send calls and stops the connection's
	// goroutines before it returns. Idempotent: later calls return nil.
	// Safe for concurrent use.
	Close() error
}

// TrySender is a Conn that can send without waiting, deadline or
// context (SCTP and TCP implement it; check with a type assertion).
type TrySender interface {
	Conn
	// TrySend is Send that never waits: when the send buffer is full (or
	// another send is in progress) it returns false and sends nothing
	// (call Send then).
	TrySend(ppid uint32, msg []byte) (sent bool, err error)
}

// FastConn is a Conn that a server's hot path can use without
// allocating per message (TCP implements it; check with a type
// assertion and fall back to Recv and Send).
type FastConn interface {
	Conn
	// RecvInto is Recv, but the message is appended to buf[:0] (buf grows
	// when it is too small) instead of a new slice; it is the caller's
	// until it passes the buffer again.
	RecvInto(ctx context.Context, buf []byte) (ppid uint32, msg []byte, err error)
	TrySender
	// TrySendMore is TrySend for a server answering requests a client
	// pipelined: with more, the message is held (not written) so that the
	// next answers go out with it in one write; a call without more, or
	// Flush, writes everything held. (A Send in between may write it
	// earlier.) Never block in a read with messages held: Flush first.
	TrySendMore(ppid uint32, msg []byte, more bool) (sent bool, err error)
	// Flush writes the messages TrySendMore holds.
	Flush() error
	// Buffered reports whether a whole message is already received, so
	// the next RecvInto returns without reading the socket. Call it from
	// the reading goroutine only.
	Buffered() bool
}

// Listener accepts connections.
type Listener interface {
	// Accept blocks until a connection arrives, ctx ends (ctx.Err()) or the
	// listener is closed (ErrClosed). Safe for concurrent use.
	Accept(ctx context.Context) (Conn, error)

	// Addrs returns the bound endpoints with the real ports (port 0 in the
	// spec is resolved): one of Kind KindTCP per TCP socket, one of Kind
	// KindSCTP for the SCTP socket (listing all its local addresses).
	// Safe for concurrent use.
	Addrs() []Endpoint

	// Close stops accepting, closes connections accepted but not yet
	// returned by Accept, and waits for the listener's goroutines to exit.
	// Connections already returned by Accept are not affected. Idempotent.
	// Safe for concurrent use.
	Close() error
}

// Network opens listeners and connections. OSNetwork uses the kernel's
// sockets; NewMemNetwork is an in-memory double for tests of the layers
// above. Methods are safe for concurrent use.
type Network interface {
	Listen(ctx context.Context, spec string, cfg Config) (Listener, error)
	Dial(ctx context.Context, spec string, cfg Config) (Conn, error)
}

// OSNetwork returns the Network of the kernel's sockets: its methods are
// Listen and Dial.
func OSNetwork() Network { return osNetwork{} }

type osNetwork struct{}

func (osNetwork) Listen(ctx context.Context, spec string, cfg Config) (Listener, error) {
	return Listen(ctx, spec, cfg)
}

func (osNetwork) Dial(ctx context.Context, spec string, cfg Config) (Conn, error) {
	return Dial(ctx, spec, cfg)
}

// unmapAll unmaps IPv4-mapped IPv6 addresses.
func unmapAll(in []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, len(in))
	for i, a := range in {
		out[i] = a.Unmap()
	}
	return out
}
