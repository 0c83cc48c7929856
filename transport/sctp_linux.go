//go:build linux && !386

package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"github.com/ishidawataru/sctp"
	"golang.org/x/sys/unix"
)

// The SCTP side uses github.com/ishidawataru/sctp for address packing
// (SCTPAddr), sctp_bindx (SCTPBind), sctp_connectx (SCTPConnect), event
// subscription and constants. The sockets themselves are non-blocking and
// wrapped in an *os.File, so the Go runtime's poller serves them: deadlines,
// context cancellation and Close unblock pending calls, and a closed
// descriptor number is never reused under a pending call.

// probeSCTP opens and closes an SCTP socket.
func probeSCTP() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, syscall.IPPROTO_SCTP)
	if err != nil {
		if isNoSCTP(err) {
			return ErrNoSCTP
		}
		return fmt.Errorf("probe: %w", os.NewSyscallError("socket", err))
	}
	_ = syscall.Close(fd)
	return nil
}

func isNoSCTP(err error) bool {
	return errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.ESOCKTNOSUPPORT)
}

// sctpSocket opens a non-blocking one-to-one SCTP socket. An IPv6 socket
// also takes IPv4 addresses (IPV6_V6ONLY off).
func sctpSocket(v6 bool) (int, error) {
	family := syscall.AF_INET
	if v6 {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, syscall.IPPROTO_SCTP)
	if err != nil {
		if isNoSCTP(err) {
			return -1, ErrNoSCTP
		}
		return -1, os.NewSyscallError("socket", err)
	}
	if v6 {
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 0); err != nil {
			_ = syscall.Close(fd)
			return -1, os.NewSyscallError("setsockopt IPV6_V6ONLY", err)
		}
	}
	// Ask for the sctp_sndrcvinfo of every message (its PPID), and for
	// peer address changes (they invalidate PeerAddrs' cache). Accepted
	// sockets inherit this from the listening socket.
	if err := sctp.NewSCTPConn(fd, nil).SubscribeEvents(sctp.SCTP_EVENT_DATA_IO | sctp.SCTP_EVENT_ADDRESS); err != nil {
		_ = syscall.Close(fd)
		return -1, os.NewSyscallError("setsockopt SCTP_EVENTS", err)
	}
	return fd, nil
}

func anyIPv6(lists ...[]netip.Addr) bool {
	for _, l := range lists {
		for _, a := range l {
			if a.Is6() && !a.Is4In6() {
				return true
			}
		}
	}
	return false
}

func toSCTPAddr(addrs []netip.Addr, port uint16) *sctp.SCTPAddr {
	sa := &sctp.SCTPAddr{Port: int(port)}
	for _, a := range addrs {
		a = a.Unmap()
		sa.IPAddrs = append(sa.IPAddrs, net.IPAddr{IP: a.AsSlice(), Zone: a.Zone()})
	}
	return sa
}

// sctpListener is a listening SCTP socket.
type sctpListener struct {
	f    *os.File
	rc   syscall.RawConn
	addr Endpoint
	cfg  Config
}

// listenSCTP binds one SCTP socket to all addrs (the wildcard when empty) on
// port and listens.
func listenSCTP(addrs []netip.Addr, port uint16, cfg Config) (*sctpListener, error) {
	bind := addrs
	v6 := anyIPv6(addrs)
	if len(addrs) == 0 {
		v6 = true
		bind = []netip.Addr{netip.IPv6Unspecified()}
	}
	fd, err := sctpSocket(v6)
	if err != nil && len(addrs) == 0 && errors.Is(err, syscall.EAFNOSUPPORT) {
		bind = []netip.Addr{netip.IPv4Unspecified()}
		fd, err = sctpSocket(false)
	}
	if err != nil {
		return nil, fmt.Errorf("sctp: %w", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("sctp: %w", os.NewSyscallError("setsockopt SO_REUSEADDR", err))
	}
	sa := toSCTPAddr(bind, port)
	if err := sctp.SCTPBind(fd, sa, sctp.SCTP_BINDX_ADD_ADDR); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("sctp bind %s: %w", sa, os.NewSyscallError("sctp_bindx", err))
	}
	if err := syscall.Listen(fd, syscall.SOMAXCONN); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("sctp listen %s: %w", sa, os.NewSyscallError("listen", err))
	}
	if cfg.ReusePort {
		// Only now, bound and listening: a second listener (which binds
		// without it) still finds the port taken, while our own dialing
		// sockets with SO_REUSEPORT may share it.
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			cfg.logger().Debug("sctp listener: SO_REUSEPORT refused; dials cannot share its port", "error", err)
		}
	}
	if lsa, err := syscall.Getsockname(fd); err == nil {
		switch v := lsa.(type) {
		case *syscall.SockaddrInet4:
			sa.Port = v.Port
		case *syscall.SockaddrInet6:
			sa.Port = v.Port
		}
	}
	f := os.NewFile(uintptr(fd), "sctp-listener")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("sctp: %w", err)
	}
	return &sctpListener{f: f, rc: rc, addr: sctpEndpoint(bind, uint16(sa.Port)), cfg: cfg}, nil
}

// Addr returns the bound addresses and port.
func (l *sctpListener) Addr() Endpoint { return l.addr }

// Close closes the socket; a pending accept returns.
func (l *sctpListener) Close() error { return l.f.Close() }

// accept waits for one association. An association that is gone before
// it could be set up (the peer connected and closed at once: its
// addresses can no longer be asked for) is dropped, and accept waits for
// the next one: it is the peer's doing, not the listener's failure.
func (l *sctpListener) accept() (Conn, error) {
	for {
		var nfd int
		var aerr error
		err := l.rc.Read(func(fd uintptr) bool {
			nfd, _, aerr = syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			return aerr != syscall.EAGAIN
		})
		if err != nil {
			return nil, err
		}
		if aerr != nil {
			return nil, os.NewSyscallError("accept4", aerr)
		}
		f := os.NewFile(uintptr(nfd), "sctp")
		c, err := newSCTPConn(f, l.cfg, nil, 0)
		if err != nil {
			_ = f.Close()
			l.cfg.logger().Debug("dropped an association gone before it was accepted", "error", err)
			continue
		}
		return c, nil
	}
}

// dialSCTP sets up an association with every address of the peer, from
// cfg.LocalPort when set and the kernel lets us bind it, else from an
// ephemeral port.
func dialSCTP(ctx context.Context, addrs []netip.Addr, port uint16, cfg Config) (Conn, error) {
	if cfg.LocalPort != 0 {
		c, err := dialSCTPFrom(ctx, addrs, port, cfg, cfg.LocalPort)
		var lpe *localPortError
		if !errors.As(err, &lpe) {
			return c, err
		}
		cfg.logger().Debug("sctp dial: cannot bind the local port; dialing from an ephemeral one",
			"local_port", cfg.LocalPort, "error", lpe.err)
	}
	return dialSCTPFrom(ctx, addrs, port, cfg, 0)
}

// testAfterSCTPConnect, when set (tests only), runs between a dial's
// connect and the setup of its connection.
var testAfterSCTPConnect func()

// localPortError is a dial's failure to bind its local port.
type localPortError struct{ err error }

func (e *localPortError) Error() string { return e.err.Error() }
func (e *localPortError) Unwrap() error { return e.err }

// dialSCTPFrom dials from local port lport (0: the kernel chooses). A
// failure to take lport is a *localPortError.
func dialSCTPFrom(ctx context.Context, addrs []netip.Addr, port uint16, cfg Config, lport uint16) (Conn, error) {
	v6 := anyIPv6(addrs, cfg.LocalAddrs)
	fd, err := sctpSocket(v6)
	if err != nil {
		return nil, fmt.Errorf("sctp dial: %w", err)
	}
	local := cfg.LocalAddrs
	if lport != 0 {
		if cfg.ReusePort {
			// SO_REUSEPORT shares the port with the listener and our other
			// dials; SO_REUSEADDR with the associations the listener
			// accepted, which own the port too but do not inherit
			// SO_REUSEPORT (they do inherit the listener's SO_REUSEADDR).
			// Neither lets a second listener in: it conflicts with ours.
			for _, o := range []struct {
				opt  int
				name string
			}{{unix.SO_REUSEPORT, "SO_REUSEPORT"}, {syscall.SO_REUSEADDR, "SO_REUSEADDR"}} {
				if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, o.opt, 1); err != nil {
					_ = syscall.Close(fd)
					return nil, &localPortError{fmt.Errorf("sctp dial: %w", os.NewSyscallError("setsockopt "+o.name, err))}
				}
			}
		}
		if len(local) == 0 {
			local = []netip.Addr{netip.IPv4Unspecified()}
			if v6 {
				local = []netip.Addr{netip.IPv6Unspecified()}
			}
		}
	}
	if len(local) > 0 {
		la := toSCTPAddr(local, lport)
		if err := sctp.SCTPBind(fd, la, sctp.SCTP_BINDX_ADD_ADDR); err != nil {
			_ = syscall.Close(fd)
			err = fmt.Errorf("sctp dial: bind %s: %w", la, os.NewSyscallError("sctp_bindx", err))
			if lport != 0 {
				return nil, &localPortError{err}
			}
			return nil, err
		}
	}
	ra := toSCTPAddr(addrs, port)
	if _, err := sctp.SCTPConnect(fd, ra); err != nil && err != syscall.EINPROGRESS {
		_ = syscall.Close(fd)
		if lport != 0 && errors.Is(err, syscall.EADDRNOTAVAIL) {
			// Linux refuses a second association between the same
			// addresses and ports.
			return nil, fmt.Errorf("sctp dial %s from port %d: %w (is there an association between these endpoints already?)",
				ra, lport, os.NewSyscallError("sctp_connectx", err))
		}
		return nil, fmt.Errorf("sctp dial %s: %w", ra, os.NewSyscallError("sctp_connectx", err))
	}
	f := os.NewFile(uintptr(fd), "sctp")
	if err := waitConnected(ctx, f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("sctp dial %s: %w", ra, err)
	}
	if testAfterSCTPConnect != nil {
		testAfterSCTPConnect()
	}
	c, err := newSCTPConn(f, cfg, addrs, port)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("sctp dial %s: %w", ra, err)
	}
	return c, nil
}

// waitConnected waits until a non-blocking connect finished.
func waitConnected(ctx context.Context, f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	d := ioDeadline{set: f.SetWriteDeadline}
	disarm := d.arm(ctx, time.Time{})
	var cerr error
	werr := rc.Write(func(fd uintptr) bool {
		v, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
		if err != nil {
			cerr = os.NewSyscallError("getsockopt SO_ERROR", err)
			return true
		}
		if v != 0 {
			cerr = os.NewSyscallError("connect", syscall.Errno(v))
			return true
		}
		// Writable is not proof of an association: getpeername is.
		_, err = syscall.Getpeername(int(fd))
		return err == nil
	})
	disarm()
	// Leave no deadline behind: the connection's own deadline keeping
	// (ioDeadline) starts from "none set", and a dial deadline left on the
	// socket would fail every later Send once it passed.
	_ = f.SetWriteDeadline(time.Time{})
	if werr != nil {
		if errors.Is(werr, os.ErrDeadlineExceeded) {
			if _, ctxErr := expired(ctx, time.Time{}); ctxErr != nil {
				return ctxErr
			}
		}
		return werr
	}
	return cerr
}

// sctpConn is a Conn over a one-to-one SCTP socket: one SCTP message per
// Send, the PPID in its sctp_sndrcvinfo.
type sctpConn struct {
	f       *os.File
	rc      syscall.RawConn
	cfg     Config
	logOnce sync.Once
	log     hclog.Logger // made by logger() on first use
	laddr   Endpoint
	raddr   Endpoint
	peer    []netip.Addr // the peer addresses at setup, with zones (PeerAddrs after Close)

	rsem    chan struct{} // one reader at a time; guards the fields below
	rdl     ioDeadline
	rbuf    []byte  // max message size; a message being received is rbuf[:rlen]
	rbufp   *[]byte // rbuf, from rpool; held only while a message is partly received
	rpool   *sync.Pool
	rlen    int
	rppid   uint32
	oob     []byte
	readErr error
	rd      sctpReadState
	rdFn    func(uintptr) bool // Recv's one recvmsg, made once

	wsem    chan struct{} // one writer at a time; guards the fields below
	wdl     ioDeadline
	oobPPID uint32
	oobSend []byte
	tryMsg  []byte             // TrySend's message, for tryFn
	tryErr  error              // tryFn's result
	tryFn   func(uintptr) bool // TrySend's one sendmsg, made once

	// peerAddrs caches the association's peer addresses (PeerAddrs asked
	// the kernel on every call, a system call per registration); any
	// SCTP notification Recv sees (peer address changes are subscribed
	// to) clears it.
	peerAddrs atomic.Pointer[[]netip.Addr]

	mu     sync.Mutex
	err    error // final error, returned by later calls
	closed atomic.Bool
	once   sync.Once
}

var _ TrySender = (*sctpConn)(nil)

// newSCTPConn wraps a connected socket. dialed (with dport) are the
// addresses a dial connected to: when the association is gone again
// before its peer addresses can be asked for (a daytime PE sends its line
// and closes at once), the received data is still there to read, and the
// connection reports the dialed addresses. An accepted socket has none.
func newSCTPConn(f *os.File, cfg Config, dialed []netip.Addr, dport uint16) (*sctpConn, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &sctpConn{
		f:    f,
		rc:   rc,
		cfg:  cfg,
		rsem: make(chan struct{}, 1),
		wsem: make(chan struct{}, 1),
		oob:  make([]byte, 128),
	}
	c.rdl.set = f.SetReadDeadline
	c.wdl.set = f.SetWriteDeadline
	c.rpool = recvBufPool(cfg.MaxMessageSize)
	c.rdFn = c.recvOnce
	la, lport, _ := c.addrList(sctp.SCTP_GET_LOCAL_ADDRS)
	ra, rport, err := c.addrList(sctp.SCTP_GET_PEER_ADDRS)
	if err != nil && len(dialed) > 0 {
		cfg.logger().Debug("association closed before its peer addresses were read; using the dialed ones", "error", err)
		ra, rport, err = slices.Clone(dialed), dport, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sctp: peer addresses: %w", err)
	}
	c.laddr = sctpEndpoint(la, lport)
	c.raddr = sctpEndpoint(ra, rport)
	c.peer = ra
	c.peerAddrs.Store(&ra)
	return c, nil
}

// logger is the association's logger, made on its first line: most
// associations never log.
func (c *sctpConn) logger() hclog.Logger {
	c.logOnce.Do(func() {
		c.log = c.cfg.logger().With("transport", "sctp", "local", c.laddr.String(), "remote", c.raddr.String())
	})
	return c.log
}

// addrList asks the kernel for the local or peer addresses of the
// association (SCTP_GET_LOCAL_ADDRS, SCTP_GET_PEER_ADDRS). The association
// id is 1, not 0: on a one-to-one socket any non-zero id means "the
// association", while 0 asks for the endpoint's bound addresses. The kernel packs
// sockaddr_in and sockaddr_in6 entries of different sizes back to back after
// a struct sctp_getaddrs header {assoc_id int32; addr_num uint32}.
//
// PeerAddrs asks on every registration (address verification), so the
// buffer comes from a pool and holds 16 IPv6 addresses; only a peer with
// more (the kernel answers ENOMEM) costs an 8 KiB buffer.
func (c *sctpConn) addrList(opt int) ([]netip.Addr, uint16, error) {
	bp := addrBufs.Get().(*[]byte)
	defer addrBufs.Put(bp)
	addrs, port, err := c.addrListInto(opt, *bp)
	if errors.Is(err, syscall.ENOMEM) {
		addrs, port, err = c.addrListInto(opt, make([]byte, 8+8192))
	}
	return addrs, port, err
}

// addrBufs are sctp_getaddrs buffers: the 8-byte header and 16
// sockaddr_in6.
var addrBufs = sync.Pool{New: func() any {
	b := make([]byte, 8+16*syscall.SizeofSockaddrInet6)
	return &b
}}

func (c *sctpConn) addrListInto(opt int, buf []byte) ([]netip.Addr, uint16, error) {
	binary.NativeEndian.PutUint32(buf[0:4], 1) // sctp_getaddrs.assoc_id
	binary.NativeEndian.PutUint32(buf[4:8], 0)
	optlen := uint32(len(buf))
	var errno syscall.Errno
	err := c.rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, sctp.SOL_SCTP, uintptr(opt),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&optlen)), 0)
	})
	if err != nil {
		return nil, 0, err
	}
	if errno != 0 {
		return nil, 0, os.NewSyscallError("getsockopt", errno)
	}
	// Trust addr_num, not optlen: for SCTP_GET_LOCAL_ADDRS Linux reports
	// the length without the 8-byte header.
	return parseSockaddrs(buf)
}

// parseSockaddrs decodes a struct sctp_getaddrs.
func parseSockaddrs(b []byte) ([]netip.Addr, uint16, error) {
	if len(b) < 8 {
		return nil, 0, fmt.Errorf("sctp_getaddrs: %d bytes", len(b))
	}
	n := binary.NativeEndian.Uint32(b[4:8])
	b = b[8:]
	var out []netip.Addr
	var port uint16
	for i := uint32(0); i < n; i++ {
		if len(b) < 2 {
			return out, port, fmt.Errorf("sctp_getaddrs: truncated at address %d", i)
		}
		switch binary.NativeEndian.Uint16(b[0:2]) {
		case syscall.AF_INET:
			if len(b) < syscall.SizeofSockaddrInet4 {
				return out, port, fmt.Errorf("sctp_getaddrs: truncated at address %d", i)
			}
			port = binary.BigEndian.Uint16(b[2:4])
			out = append(out, netip.AddrFrom4([4]byte(b[4:8])))
			b = b[syscall.SizeofSockaddrInet4:]
		case syscall.AF_INET6:
			if len(b) < syscall.SizeofSockaddrInet6 {
				return out, port, fmt.Errorf("sctp_getaddrs: truncated at address %d", i)
			}
			port = binary.BigEndian.Uint16(b[2:4])
			a := netip.AddrFrom16([16]byte(b[8:24]))
			if scope := binary.NativeEndian.Uint32(b[24:28]); scope != 0 && a.IsLinkLocalUnicast() {
				if ifi, err := net.InterfaceByIndex(int(scope)); err == nil {
					a = a.WithZone(ifi.Name)
				}
			}
			out = append(out, a.Unmap())
			b = b[syscall.SizeofSockaddrInet6:]
		default:
			return out, port, fmt.Errorf("sctp_getaddrs: address family %d", binary.NativeEndian.Uint16(b[0:2]))
		}
	}
	return out, port, nil
}

// Kind implements Conn.
func (c *sctpConn) Kind() Kind { return KindSCTP }

// LocalAddr implements Conn.
func (c *sctpConn) LocalAddr() Endpoint { return c.laddr }

// RemoteAddr implements Conn.
func (c *sctpConn) RemoteAddr() Endpoint { return c.raddr }

// PeerAddrs implements Conn.
func (c *sctpConn) PeerAddrs() []netip.Addr {
	if !c.closed.Load() {
		if p := c.peerAddrs.Load(); p != nil {
			return slices.Clone(*p)
		}
		if addrs, _, err := c.addrList(sctp.SCTP_GET_PEER_ADDRS); err == nil {
			c.peerAddrs.Store(&addrs)
			return slices.Clone(addrs)
		}
	}
	out := make([]netip.Addr, 0, len(c.peer))
	for _, a := range c.peer {
		out = append(out, a.Unmap().WithZone(a.Zone()))
	}
	return out
}

// finalErr records err as the connection's final error unless one is set,
// closes the socket, and returns the final error.
func (c *sctpConn) finalErr(err error) error {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	err = c.err
	c.mu.Unlock()
	c.closeFile()
	return err
}

func (c *sctpConn) currentErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *sctpConn) closeFile() {
	c.once.Do(func() {
		c.closed.Store(true)
		_ = c.f.Close()
	})
}

// sndrcvOOB builds the SCTP_SNDRCV control message that carries ppid.
func sndrcvOOB(ppid uint32) []byte {
	const infoLen = int(unsafe.Sizeof(sctp.SndRcvInfo{}))
	b := make([]byte, syscall.CmsgSpace(infoLen))
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = syscall.IPPROTO_SCTP
	h.Type = sctp.SCTP_CMSG_SNDRCV
	h.SetLen(syscall.CmsgLen(infoLen))
	// sinfo_ppid is at offset 8 and travels in network byte order.
	binary.BigEndian.PutUint32(b[syscall.CmsgLen(0)+8:], ppid)
	return b
}

// rcvPPID finds the PPID in the control messages of a received message
// (sctp_sndrcvinfo or sctp_rcvinfo; both have it at offset 8).
func rcvPPID(oob []byte) uint32 {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.IPPROTO_SCTP &&
			(m.Header.Type == sctp.SCTP_CMSG_SNDRCV || m.Header.Type == sctp.SCTP_CMSG_RCVINFO) && len(m.Data) >= 12 {
			return binary.BigEndian.Uint32(m.Data[8:12])
		}
	}
	return 0
}

// Send implements Conn. One sendmsg per message: the kernel takes a message
// whole or not at all.
func (c *sctpConn) Send(ctx context.Context, ppid uint32, msg []byte) error {
	if len(msg) == 0 {
		return fmt.Errorf("sctp send to %s: %w: empty message", c.raddr, ErrBadFrame)
	}
	if len(msg) > c.cfg.MaxMessageSize {
		return fmt.Errorf("sctp send to %s: %w: %d bytes, limit %d", c.raddr, ErrMessageTooLarge, len(msg), c.cfg.MaxMessageSize)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.wsem }()
	if err := c.currentErr(); err != nil {
		return err
	}
	if c.oobSend == nil || c.oobPPID != ppid {
		c.oobSend, c.oobPPID = sndrcvOOB(ppid), ppid
	}
	var timeout time.Time
	if c.cfg.WriteTimeout > 0 {
		timeout = time.Now().Add(c.cfg.WriteTimeout)
	}
	for {
		disarm := c.wdl.arm(ctx, timeout)
		var serr error
		err := c.rc.Write(func(fd uintptr) bool {
			serr = syscall.Sendmsg(int(fd), msg, c.oobSend, nil, syscall.MSG_NOSIGNAL)
			return serr != syscall.EAGAIN
		})
		disarm()
		if err == nil && serr == syscall.EINTR {
			continue
		}
		if err == nil && serr == nil {
			return nil
		}
		if err == nil {
			c.logger().Debug("closing connection: send failed", "error", serr)
			return c.finalErr(fmt.Errorf("sctp send to %s: %w", c.raddr, os.NewSyscallError("sendmsg", serr)))
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			timedOut, ctxErr := expired(ctx, timeout)
			if timedOut {
				c.logger().Warn("closing connection: peer does not read", "write_timeout", c.cfg.WriteTimeout)
				return c.finalErr(fmt.Errorf("sctp send to %s: peer stopped reading for %v: %w", c.raddr, c.cfg.WriteTimeout, err))
			}
			if ctxErr != nil {
				return ctxErr
			}
			c.wdl.stale()
			continue
		}
		return c.finalErr(fmt.Errorf("sctp send to %s: %w", c.raddr, ErrClosed))
	}
}

// TrySend implements TrySender: one sendmsg, with no deadline, timer or
// context, when no other send is in progress. It returns false, having
// sent nothing, when the association's send buffer is full, another send
// holds the connection, or a deadline an earlier Send left has passed:
// Send then waits as it should.
func (c *sctpConn) TrySend(ppid uint32, msg []byte) (bool, error) {
	if len(msg) == 0 {
		return false, fmt.Errorf("sctp send to %s: %w: empty message", c.raddr, ErrBadFrame)
	}
	if len(msg) > c.cfg.MaxMessageSize {
		return false, fmt.Errorf("sctp send to %s: %w: %d bytes, limit %d", c.raddr, ErrMessageTooLarge, len(msg), c.cfg.MaxMessageSize)
	}
	select {
	case c.wsem <- struct{}{}:
	default:
		return false, nil
	}
	defer func() { <-c.wsem }()
	if err := c.currentErr(); err != nil {
		return false, err
	}
	if c.oobSend == nil || c.oobPPID != ppid {
		c.oobSend, c.oobPPID = sndrcvOOB(ppid), ppid
	}
	if c.tryFn == nil {
		c.tryFn = func(fd uintptr) bool {
			for {
				c.tryErr = syscall.Sendmsg(int(fd), c.tryMsg, c.oobSend, nil, syscall.MSG_NOSIGNAL)
				if c.tryErr != syscall.EINTR {
					return true // never wait for the socket
				}
			}
		}
	}
	c.tryMsg = msg
	err := c.rc.Write(c.tryFn)
	c.tryMsg = nil
	serr := c.tryErr
	c.tryErr = nil
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false, nil // a stale deadline: Send re-arms it
	case err != nil:
		return false, c.finalErr(fmt.Errorf("sctp send to %s: %w", c.raddr, ErrClosed))
	case serr == syscall.EAGAIN:
		return false, nil
	case serr != nil:
		c.logger().Debug("closing connection: send failed", "error", serr)
		return false, c.finalErr(fmt.Errorf("sctp send to %s: %w", c.raddr, os.NewSyscallError("sendmsg", serr)))
	}
	return true, nil
}

// Recv implements Conn. A message longer than the receive buffer arrives in
// pieces (partial delivery); Recv collects them until MSG_EOR.
func (c *sctpConn) Recv(ctx context.Context) (uint32, []byte, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	select {
	case c.rsem <- struct{}{}:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	defer func() { <-c.rsem }()
	if c.readErr != nil {
		return 0, nil, c.readErr
	}
	if err := c.currentErr(); err != nil {
		c.readErr = err
		return 0, nil, err
	}
	var timeout time.Time
	if c.cfg.ReadTimeout > 0 {
		timeout = time.Now().Add(c.cfg.ReadTimeout)
	}
	for {
		disarm := c.rdl.arm(ctx, timeout)
		c.rd = sctpReadState{}
		err := c.rc.Read(c.rdFn)
		n, oobn, flags, rerr := c.rd.n, c.rd.oobn, c.rd.flags, c.rd.err
		disarm()
		if err == nil && rerr == syscall.EINTR {
			continue
		}
		if err != nil || rerr != nil || n == 0 {
			c.releaseRecvBuf() // unless part of a message is in it
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				timedOut, ctxErr := expired(ctx, timeout)
				if timedOut {
					c.logger().Info("closing connection: read idle timeout", "read_timeout", c.cfg.ReadTimeout)
					return 0, nil, c.failRead(fmt.Errorf("sctp recv from %s: no complete message within %v: %w", c.raddr, c.cfg.ReadTimeout, ErrReadTimeout))
				}
				if ctxErr != nil {
					return 0, nil, ctxErr
				}
				c.rdl.stale()
				continue
			}
			return 0, nil, c.failRead(fmt.Errorf("sctp recv from %s: %w", c.raddr, ErrClosed))
		}
		if rerr != nil {
			c.logger().Debug("closing connection: recv failed", "error", rerr)
			return 0, nil, c.failRead(fmt.Errorf("sctp recv from %s: %w", c.raddr, os.NewSyscallError("recvmsg", rerr)))
		}
		if flags&sctp.MSG_NOTIFICATION != 0 {
			// Only peer address changes are subscribed to: the
			// addresses are asked for again when next needed.
			c.peerAddrs.Store(nil)
			continue
		}
		if n == 0 {
			if c.rlen > 0 {
				c.logger().Warn("closing connection: peer closed inside a message", "received", c.rlen)
				return 0, nil, c.failRead(fmt.Errorf("sctp recv from %s: peer closed inside a message: %w", c.raddr, io.ErrUnexpectedEOF))
			}
			if c.cfg.logger().IsDebug() {
				c.logger().Debug("peer closed the association")
			}
			return 0, nil, c.failRead(io.EOF)
		}
		if c.rlen == 0 {
			c.rppid = rcvPPID(c.oob[:oobn])
		}
		c.rlen += n
		if flags&syscall.MSG_EOR != 0 {
			msg := make([]byte, c.rlen)
			copy(msg, c.rbuf[:c.rlen])
			c.rlen = 0
			c.releaseRecvBuf()
			return c.rppid, msg, nil
		}
		if c.rlen == len(c.rbuf) {
			c.logger().Warn("closing connection: message too large", "limit", c.cfg.MaxMessageSize, "ppid", c.rppid)
			return 0, nil, c.failRead(fmt.Errorf("sctp recv from %s: %w: more than %d bytes (ppid %d)", c.raddr, ErrMessageTooLarge, c.cfg.MaxMessageSize, c.rppid))
		}
	}
}

// sctpReadState is the outcome of Recv's recvmsg, kept in the connection
// so that the function given to RawConn.Read is made once.
type sctpReadState struct {
	n, oobn, flags int
	err            error
}

// recvOnce is Recv's RawConn.Read function: one recvmsg into the receive
// buffer, taken from the pool when the socket has something; false (wait
// for readability, having given back a buffer that holds nothing) when
// there is nothing to read.
func (c *sctpConn) recvOnce(fd uintptr) bool {
	if c.rbuf == nil {
		c.rbufp = c.rpool.Get().(*[]byte)
		c.rbuf = *c.rbufp
	}
	d := &c.rd
	d.n, d.oobn, d.flags, _, d.err = syscall.Recvmsg(int(fd), c.rbuf[c.rlen:], c.oob, 0)
	if d.err == syscall.EAGAIN {
		c.releaseRecvBuf()
		return false
	}
	return true
}

// releaseRecvBuf gives the receive buffer back to its pool unless part of
// a message is in it: an idle association holds none.
func (c *sctpConn) releaseRecvBuf() {
	if c.rlen > 0 || c.rbufp == nil {
		return
	}
	c.rpool.Put(c.rbufp)
	c.rbuf, c.rbufp = nil, nil
}

// recvBufPools holds one pool of receive buffers per message size limit
// (a *sync.Pool per int; most processes use one).
var recvBufPools sync.Map

// recvBufPool is the pool of receive buffers of size bytes.
func recvBufPool(size int) *sync.Pool {
	if p, ok := recvBufPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := recvBufPools.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return p.(*sync.Pool)
}

func (c *sctpConn) failRead(err error) error {
	c.readErr = c.finalErr(err)
	return c.readErr
}

// Close implements Conn. The kernel delivers what Send accepted and then
// shuts the association down gracefully.
func (c *sctpConn) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("sctp %s: %w", c.raddr, ErrClosed)
	}
	c.mu.Unlock()
	c.closeFile()
	return nil
}
