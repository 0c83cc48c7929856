package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Default multicast groups of RSPLIB (there are no IANA groups).
const (
	DefaultASAPAnnounce = "239.0.0.50:3863" // ASAP_SERVER_ANNOUNCE
	DefaultENRPPresence = "239.0.0.51:9901" // ENRP_PRESENCE
)

// MulticastSpec is a parsed multicast spec: "off", or a group and port
// ("239.0.0.50:3863", "[ff15::50]:3863").
type MulticastSpec struct {
	Off   bool
	Group netip.AddrPort
}

// String returns "off" or group:port.
func (s MulticastSpec) String() string {
	if s.Off {
		return "off"
	}
	return s.Group.String()
}

// ParseMulticastSpec parses "off" or a multicast group:port.
func ParseMulticastSpec(s string) (MulticastSpec, error) {
	if s == "off" {
		return MulticastSpec{Off: true}, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return MulticastSpec{}, fmt.Errorf("%w %q: want \"off\" or group:port (IPv6 as [group]:port): %v", ErrBadSpec, s, err)
	}
	if !ap.Addr().IsMulticast() {
		return MulticastSpec{}, fmt.Errorf("%w %q: %s is not a multicast address (224.0.0.0/4, ff00::/8)", ErrBadSpec, s, ap.Addr())
	}
	if ap.Port() == 0 {
		return MulticastSpec{}, fmt.Errorf("%w %q: port 0", ErrBadSpec, s)
	}
	return MulticastSpec{Group: ap}, nil
}

// MulticastConfig configures OpenMulticast. Start from DefaultMulticastConfig.
type MulticastConfig struct {
	// Interface is the name of the interface to join the group on and send
	// from ("eth0"). Empty lets the kernel choose by its routes for the
	// group (add one with `ip route add 224.0.0.0/4 dev eth0`). Default "".
	Interface string

	// TTL is the IP TTL (IPv6 hop limit) of sent datagrams, 0..255. 1 keeps
	// them on the local link; 0 keeps them on this host. RSPLIB's registrar
	// uses 30. Default 1.
	TTL int

	// Loopback delivers sent datagrams to listeners on this host too
	// (IP_MULTICAST_LOOP). Default true.
	Loopback bool

	// SendOnly opens a socket on an ephemeral port that does not join the
	// group; Recv then fails. Default false.
	SendOnly bool

	// MaxDatagramSize is the largest datagram Recv returns whole (bytes,
	// 1..65535); longer ones are cut. Default 65535.
	MaxDatagramSize int

	// Logger; nil means hclog.NewNullLogger().
	Logger hclog.Logger
}

// DefaultMulticastConfig returns the defaults documented on each field.
func DefaultMulticastConfig() MulticastConfig {
	return MulticastConfig{TTL: 1, Loopback: true, MaxDatagramSize: 65535}
}

// Validate reports every invalid field.
func (c MulticastConfig) Validate() error {
	var errs []error
	if c.TTL < 0 || c.TTL > 255 {
		errs = append(errs, fmt.Errorf("multicast config: TTL %d out of range [0, 255]", c.TTL))
	}
	if c.MaxDatagramSize < 1 || c.MaxDatagramSize > 65535 {
		errs = append(errs, fmt.Errorf("multicast config: MaxDatagramSize %d out of range [1, 65535]", c.MaxDatagramSize))
	}
	return errors.Join(errs...)
}

// Multicast sends datagrams to a multicast group and receives the group's
// datagrams (ASAP SERVER_ANNOUNCE, ENRP PRESENCE). Opened with the spec
// "off", it drops what it is asked to send and Recv returns ErrMulticastOff.
type Multicast struct {
	spec MulticastSpec
	cfg  MulticastConfig
	log  hclog.Logger
	uc   *net.UDPConn // nil when off

	rsem chan struct{} // one reader at a time; guards rdl and rbuf
	rdl  ioDeadline
	rbuf []byte
	wsem chan struct{} // one writer at a time; guards wdl
	wdl  ioDeadline

	closed chan struct{}
	once   sync.Once
}

// OpenMulticast opens a multicast endpoint for spec ("off" or group:port).
// Unless cfg.SendOnly, it binds the group's port (SO_REUSEADDR, so several
// processes on a host can listen) and joins the group on cfg.Interface.
func OpenMulticast(ctx context.Context, spec string, cfg MulticastConfig) (*Multicast, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sp, err := ParseMulticastSpec(spec)
	if err != nil {
		return nil, err
	}
	log := hclog.Logger(hclog.NewNullLogger())
	if cfg.Logger != nil {
		log = cfg.Logger
	}
	m := &Multicast{
		spec:   sp,
		cfg:    cfg,
		log:    log.With("transport", "multicast", "group", sp.String()),
		rsem:   make(chan struct{}, 1),
		wsem:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	if sp.Off {
		return m, nil
	}
	var ifi *net.Interface
	if cfg.Interface != "" {
		if ifi, err = net.InterfaceByName(cfg.Interface); err != nil {
			return nil, fmt.Errorf("multicast %s: interface %q: %w", sp, cfg.Interface, err)
		}
	}
	uc, err := openMulticastSocket(ctx, sp.Group, ifi, cfg)
	if err != nil {
		return nil, fmt.Errorf("multicast %s: %w", sp, err)
	}
	m.uc = uc
	m.rdl.set = uc.SetReadDeadline
	m.wdl.set = uc.SetWriteDeadline
	return m, nil
}

// Enabled reports whether the spec was not "off". Safe for concurrent use.
func (m *Multicast) Enabled() bool { return !m.spec.Off }

// Group returns the group and port (invalid when off). Safe for concurrent use.
func (m *Multicast) Group() netip.AddrPort { return m.spec.Group }

// LocalAddr returns the bound address (nil when off). Safe for concurrent use.
func (m *Multicast) LocalAddr() net.Addr {
	if m.uc == nil {
		return nil
	}
	return m.uc.LocalAddr()
}

// Send sends payload as one datagram to the group; when off it does
// nothing. Safe for concurrent use.
func (m *Multicast) Send(ctx context.Context, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case m.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-m.wsem }()
	select {
	case <-m.closed:
		return fmt.Errorf("multicast send: %w", ErrClosed)
	default:
	}
	if m.uc == nil {
		return nil
	}
	disarm := m.wdl.arm(ctx, noTimeout)
	_, err := m.uc.WriteToUDPAddrPort(payload, m.spec.Group)
	disarm()
	if err != nil {
		return m.ioErr(ctx, "send", err)
	}
	return nil
}

// Recv waits for one datagram of the group and returns its payload (owned
// by the caller) and its source. When off it returns ErrMulticastOff. Safe
// for concurrent use; calls are served one at a time.
func (m *Multicast) Recv(ctx context.Context) ([]byte, netip.AddrPort, error) {
	if m.uc == nil {
		return nil, netip.AddrPort{}, fmt.Errorf("multicast recv: %w", ErrMulticastOff)
	}
	if m.cfg.SendOnly {
		return nil, netip.AddrPort{}, errors.New("multicast recv: opened with SendOnly")
	}
	if err := ctx.Err(); err != nil {
		return nil, netip.AddrPort{}, err
	}
	select {
	case m.rsem <- struct{}{}:
	case <-ctx.Done():
		return nil, netip.AddrPort{}, ctx.Err()
	}
	defer func() { <-m.rsem }()
	if m.rbuf == nil {
		m.rbuf = make([]byte, m.cfg.MaxDatagramSize)
	}
	for {
		disarm := m.rdl.arm(ctx, noTimeout)
		n, src, err := m.uc.ReadFromUDPAddrPort(m.rbuf)
		disarm()
		if err != nil {
			if err := m.ioErr(ctx, "recv", err); err != nil {
				return nil, netip.AddrPort{}, err
			}
			continue
		}
		return append([]byte(nil), m.rbuf[:n]...), netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), nil
	}
}

// ioErr maps an I/O error: ctx errors, ErrClosed, or the error; nil for a
// stale deadline.
func (m *Multicast) ioErr(ctx context.Context, op string, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		_, ctxErr := expired(ctx, noTimeout)
		return ctxErr
	}
	if errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("multicast %s: %w", op, ErrClosed)
	}
	return fmt.Errorf("multicast %s %s: %w", op, m.spec, err)
}

// Close leaves the group and closes the socket; pending calls return
// ErrClosed. Idempotent. Safe for concurrent use.
func (m *Multicast) Close() error {
	var err error
	m.once.Do(func() {
		close(m.closed)
		if m.uc != nil {
			err = m.uc.Close()
		}
	})
	return err
}

// bindAddr is the address a multicast socket binds.
func bindAddr(group netip.AddrPort, sendOnly bool) string {
	if sendOnly {
		if group.Addr().Is4() {
			return "0.0.0.0:0"
		}
		return "[::]:0"
	}
	// Bound to the group address, the socket receives only that group's
	// datagrams for the port, not unicast ones nor other groups'.
	return net.JoinHostPort(group.Addr().String(), strconv.Itoa(int(group.Port())))
}
