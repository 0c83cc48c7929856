package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Payload protocol identifiers (IANA "SCTP Payload Protocol Identifiers").
const (
	PPIDASAP uint32 = 11 // ASAP, RFC 5352
	PPIDENRP uint32 = 12 // ENRP, RFC 5353
)

// Well-known ports (IANA).
const (
	PortASAP = 3863
	PortENRP = 9901
)

// MaxFrameSize is the largest message a TCP frame can carry: the 16-bit length
// field of the ASAP/ENRP header covers the whole message.
const MaxFrameSize = 65535

// muxHeaderSize is the size of a mux data frame header (see doc.go).
const muxHeaderSize = 8

// Config configures Listen, Dial, Pipe and MemNetwork. Start from
// DefaultConfig and change what you need; the zero value is not valid.
type Config struct {
	// PPID is the payload protocol identifier of a plain TCP connection,
	// which cannot carry one on the wire: Recv reports it for every message
	// and Send accepts only it. Use PPIDASAP for the ASAP port and PPIDENRP
	// for the ENRP port. Required (non-zero) for tcp: and auto addresses
	// unless Mux is set. SCTP carries the PPID of every message and ignores
	// this field. Default 0.
	PPID uint32

	// Mux selects the "data plus control" framing on TCP (RFC 5352 PE data
	// channels): ASAP messages travel raw and reported as PPIDASAP,
	// application data with any other PPID in 8-byte-header frames. Both
	// ends must agree. See the package documentation. Default false.
	Mux bool

	// MaxMessageSize is the largest message, in bytes, that Send accepts and
	// Recv delivers (for mux data frames: the payload). Between 4 and 65535.
	// Default 65535.
	MaxMessageSize int

	// ReadTimeout bounds how long one Recv call waits for a complete
	// message. When it expires Recv closes the connection and returns
	// ErrReadTimeout, so a silent or slow peer cannot hold a connection
	// forever. 0 means no limit. Default 0; the daemon sets it per listener.
	ReadTimeout time.Duration

	// WriteTimeout bounds how long a write to the socket may make no
	// progress (the peer stopped reading and the kernel buffers are full).
	// When it expires the connection is closed and later Sends fail. It also
	// bounds how long Close waits to flush queued messages (CloseLinger is
	// used when WriteTimeout is 0). 0 means no limit. Default 0.
	WriteTimeout time.Duration

	// CloseLinger bounds how long Close waits for messages already accepted
	// by Send to be written when WriteTimeout is 0. Default 2 s.
	CloseLinger time.Duration

	// SCTPAttemptTimeout bounds the SCTP attempt of an auto Dial before it
	// falls back to TCP. Default 2 s.
	SCTPAttemptTimeout time.Duration

	// TLS is the TLS configuration of "tls:" addresses: a listener's
	// (server side) or a dial's (client side; an empty ServerName is set
	// to the host dialed). Required for tls: addresses, unused otherwise.
	TLS *tls.Config

	// LocalAddrs are bound before Dial connects. SCTP binds all of them (a
	// multi-homed association); TCP binds the first one of the remote
	// address's family. MemNetwork reports them as the dialer's PeerAddrs.
	// Empty means the kernel chooses. Listen ignores this field: the address
	// spec names the local addresses. Default empty.
	LocalAddrs []netip.Addr

	// LocalPort is the local port Dial binds (with LocalAddrs, or the
	// wildcard address when those are empty), so that the peer sees the
	// association come from a known port: a registrar dials its ENRP peers
	// from its ENRP port, as RSPLIB expects. SCTP only: TCP, and the TCP
	// attempt of an auto Dial, use an ephemeral port. When the kernel
	// refuses the port (taken by a socket without ReusePort, or
	// SO_REUSEPORT unsupported), Dial falls back to an ephemeral port and
	// logs it at debug level. 0 means the kernel chooses. Listen ignores
	// this field. Default 0.
	LocalPort uint16

	// ReusePort sets SO_REUSEPORT on SCTP sockets, so that sockets of the
	// same user can share a port: Listen sets it only after its bind, so a
	// second listener on the same port still fails with "address already
	// in use" (every listener binds without it), while a Dial with
	// LocalPort and ReusePort can use the listener's port (it also sets
	// SO_REUSEADDR, to share the port with the associations the listener
	// accepted, which do not inherit SO_REUSEPORT). TCP ignores it.
	// Default false.
	ReusePort bool

	// Logger receives connection-level events (bad frames, timeouts, the
	// one-time "no SCTP" notice). nil means hclog.NewNullLogger().
	Logger hclog.Logger
}

// DefaultConfig returns the defaults documented on each Config field.
func DefaultConfig() Config {
	return Config{
		MaxMessageSize:     MaxFrameSize,
		CloseLinger:        2 * time.Second,
		SCTPAttemptTimeout: 2 * time.Second,
	}
}

// Validate reports every invalid field, joined with errors.Join. Each error
// names the field and its bound.
func (c Config) Validate() error {
	var errs []error
	if c.MaxMessageSize < 4 || c.MaxMessageSize > MaxFrameSize {
		errs = append(errs, fmt.Errorf("transport config: MaxMessageSize %d out of range [4, %d]", c.MaxMessageSize, MaxFrameSize))
	}
	if c.ReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("transport config: ReadTimeout %v is negative (0 means no limit)", c.ReadTimeout))
	}
	if c.WriteTimeout < 0 {
		errs = append(errs, fmt.Errorf("transport config: WriteTimeout %v is negative (0 means no limit)", c.WriteTimeout))
	}
	if c.CloseLinger < 0 {
		errs = append(errs, fmt.Errorf("transport config: CloseLinger %v is negative", c.CloseLinger))
	}
	if c.SCTPAttemptTimeout <= 0 {
		errs = append(errs, fmt.Errorf("transport config: SCTPAttemptTimeout %v must be positive", c.SCTPAttemptTimeout))
	}
	for i, a := range c.LocalAddrs {
		if !a.IsValid() {
			errs = append(errs, fmt.Errorf("transport config: LocalAddrs[%d] is not a valid IP address", i))
		}
	}
	return errors.Join(errs...)
}

// logger returns the configured logger or a null logger.
func (c Config) logger() hclog.Logger {
	if c.Logger == nil {
		return hclog.NewNullLogger()
	}
	return c.Logger
}

// lingerTimeout is how long Close waits for queued messages.
func (c Config) lingerTimeout() time.Duration {
	if c.WriteTimeout > 0 {
		return c.WriteTimeout
	}
	return c.CloseLinger
}

// checkTCPPPID reports a missing PPID for a plain TCP endpoint.
func (c Config) checkTCPPPID() error {
	if c.PPID == 0 && !c.Mux {
		return errors.New("transport config: PPID is 0; TCP needs it to label messages (PPIDASAP or PPIDENRP), or set Mux")
	}
	return nil
}

// Kind tells which transport carries a Conn.
type Kind uint8

// Kinds. Only append.
const (
	KindTCP Kind = iota + 1
	KindSCTP
	KindPipe
)

// String returns "tcp", "sctp" or "pipe".
func (k Kind) String() string {
	switch k {
	case KindTCP:
		return "tcp"
	case KindSCTP:
		return "sctp"
	case KindPipe:
		return "pipe"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// checkTLS: a tls: address needs a TLS configuration.
func (c *Config) checkTLS(p Proto) error {
	if p == ProtoTLS && c.TLS == nil {
		return fmt.Errorf("%w: a tls: address needs a TLS configuration (Config.TLS)", ErrBadSpec)
	}
	return nil
}
