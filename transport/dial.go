package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// sctpSupported reports whether the kernel has SCTP: nil, or an error
// wrapping ErrNoSCTP (or the unexpected error of the probe). Tests replace it.
var sctpSupported = sync.OnceValue(probeSCTP)

// noSCTPNotice makes auto mode log the missing SCTP support once per process.
var noSCTPNotice = new(sync.Once)

// autoUsesSCTP tells whether an auto address uses SCTP, logging once per
// process when it cannot.
func autoUsesSCTP(log hclog.Logger) bool {
	err := sctpSupported()
	if err == nil {
		return true
	}
	noSCTPNotice.Do(func() {
		// Not a fault: say what happens, without the advice ErrNoSCTP
		// carries for sctp: addresses.
		if errors.Is(err, ErrNoSCTP) {
			log.Info("no SCTP in this kernel; addresses without a tcp: or sctp: prefix use TCP only")
			return
		}
		log.Info("no SCTP in this kernel; addresses without a tcp: or sctp: prefix use TCP only", "error", err)
	})
	return false
}

// Listen opens a listener on an address spec (see ParseSpec):
//
//   - "tcp:host,...:port" listens on TCP on each host (all hosts of a name);
//   - "sctp:host,...:port" binds one SCTP socket to every host (multi-homing);
//     on a kernel without SCTP it fails with ErrNoSCTP;
//   - no prefix (auto) does both on the same port, or TCP only (logged once
//     per process) where the kernel has no SCTP.
//
// An empty host list is the wildcard address (IPv4 and IPv6). Port 0 picks a
// free port; for auto, TCP picks it and SCTP binds the same one if it can
// (otherwise its own, logged). Addrs reports the real addresses. TCP
// connections use cfg.PPID (required unless cfg.Mux) and cfg's framing.
func Listen(ctx context.Context, spec string, cfg Config) (Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sp, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	addrs, err := sp.resolve(ctx)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", spec, err)
	}
	log := cfg.logger()
	l := newListener(log)
	if sp.Proto != ProtoTLS {
		cfg.TLS = nil // TLS is for tls: addresses only
	}
	switch sp.Proto {
	case ProtoTCP, ProtoTLS:
		if err := cfg.checkTCPPPID(); err != nil {
			return nil, fmt.Errorf("listen %s: %w", spec, err)
		}
		if err := cfg.checkTLS(sp.Proto); err != nil {
			return nil, fmt.Errorf("listen %s: %w", spec, err)
		}
		tls, _, err := listenTCP(ctx, addrs, sp.Port)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", spec, err)
		}
		l.addTCP(tls, cfg)
	case ProtoSCTP:
		if err := sctpSupported(); err != nil {
			return nil, fmt.Errorf("listen %s: sctp: %w", spec, err)
		}
		s, err := listenSCTP(addrs, sp.Port, cfg)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", spec, err)
		}
		l.add(s, s.Addr(), s.accept)
	default:
		if err := cfg.checkTCPPPID(); err != nil {
			return nil, fmt.Errorf("listen %s: %w", spec, err)
		}
		tls, s, err := listenAuto(ctx, addrs, sp.Port, cfg, autoUsesSCTP(log))
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", spec, err)
		}
		l.addTCP(tls, cfg)
		if s != nil {
			l.add(s, s.Addr(), s.accept)
		}
	}
	log.Debug("listening", "spec", spec, "addrs", fmt.Sprint(l.addrs))
	return l, nil
}

// listenAuto binds TCP, then SCTP on the same port when useSCTP.
func listenAuto(ctx context.Context, addrs []netip.Addr, port uint16, cfg Config, useSCTP bool) ([]*net.TCPListener, *sctpListener, error) {
	const attempts = 5
	for i := 0; ; i++ {
		tls, p, err := listenTCP(ctx, addrs, port)
		if err != nil {
			return nil, nil, err
		}
		if !useSCTP {
			return tls, nil, nil
		}
		s, err := listenSCTP(addrs, p, cfg)
		if err == nil {
			return tls, s, nil
		}
		if port != 0 || i == attempts-1 {
			if port == 0 {
				// TCP keeps its port; SCTP takes a free one of its own.
				if s, err2 := listenSCTP(addrs, 0, cfg); err2 == nil {
					cfg.logger().Info("sctp could not bind the tcp port; using another", "tcp_port", p, "sctp", s.Addr().String(), "error", err)
					return tls, s, nil
				}
			}
			closeAll(tls)
			return nil, nil, err
		}
		closeAll(tls) // the port is taken for SCTP: try another one
	}
}

func closeAll(tls []*net.TCPListener) {
	for _, tl := range tls {
		_ = tl.Close()
	}
}

// listenTCP opens one TCP listener per address (one dual-stack wildcard
// listener when addrs is empty), all on the same port. Port 0 takes the port
// the first listener got. It returns the port in use.
func listenTCP(ctx context.Context, addrs []netip.Addr, port uint16) ([]*net.TCPListener, uint16, error) {
	var lc net.ListenConfig
	if len(addrs) == 0 {
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("", fmt.Sprint(port)))
		if err != nil {
			return nil, 0, err
		}
		tl := ln.(*net.TCPListener)
		return []*net.TCPListener{tl}, tl.Addr().(*net.TCPAddr).AddrPort().Port(), nil
	}
	var tls []*net.TCPListener
	for _, a := range addrs {
		network := "tcp4"
		if a.Is6() {
			network = "tcp6"
		}
		ln, err := lc.Listen(ctx, network, netip.AddrPortFrom(a, port).String())
		if err != nil {
			closeAll(tls)
			return nil, 0, err
		}
		tl := ln.(*net.TCPListener)
		tls = append(tls, tl)
		port = tl.Addr().(*net.TCPAddr).AddrPort().Port()
	}
	return tls, port, nil
}

// addTCP starts accepting on TCP listeners.
func (l *listener) addTCP(lns []*net.TCPListener, cfg Config) {
	pcfg := &cfg // one copy for every accepted connection
	for _, tl := range lns {
		tl := tl
		l.add(tl, tcpEndpoint(tl.Addr()), func() (Conn, error) {
			nc, err := tl.AcceptTCP()
			if err != nil {
				return nil, err
			}
			if cfg.TLS != nil {
				// The handshake runs on the connection's first read, in
				// the goroutine that serves it, not in the accept loop.
				return newTCPConn(tls.Server(nc, cfg.TLS), pcfg), nil
			}
			return newTCPConn(nc, pcfg), nil
		})
	}
}

// Dial connects to an address spec (see ParseSpec):
//
//   - "tcp:host,...:port" tries each address in turn;
//   - "sctp:host,...:port" sets up one association with every address of a
//     multi-homed peer; on a kernel without SCTP it fails with ErrNoSCTP;
//   - no prefix (auto) tries SCTP for at most cfg.SCTPAttemptTimeout, then
//     TCP; TCP only (logged once per process) where the kernel has no SCTP.
//
// cfg.LocalAddrs are bound first. ctx bounds the whole attempt.
func Dial(ctx context.Context, spec string, cfg Config) (Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sp, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if len(sp.Hosts) == 0 || sp.Port == 0 {
		return nil, fmt.Errorf("dial %s: %w: dialing needs a host and a port other than 0", spec, ErrBadSpec)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dial %s: %w", spec, err)
	}
	addrs, err := sp.resolve(ctx)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", spec, err)
	}
	if sp.Proto != ProtoTLS {
		cfg.TLS = nil // TLS is for tls: addresses only
	}
	switch sp.Proto {
	case ProtoTCP, ProtoTLS:
		if err := cfg.checkTCPPPID(); err != nil {
			return nil, fmt.Errorf("dial %s: %w", spec, err)
		}
		if err := cfg.checkTLS(sp.Proto); err != nil {
			return nil, fmt.Errorf("dial %s: %w", spec, err)
		}
		if sp.Proto == ProtoTLS && cfg.TLS.ServerName == "" {
			cfg.TLS = cfg.TLS.Clone()
			cfg.TLS.ServerName = sp.Hosts[0]
		}
		c, err := dialTCP(ctx, addrs, sp.Port, cfg)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", spec, err)
		}
		return c, nil
	case ProtoSCTP:
		if err := sctpSupported(); err != nil {
			return nil, fmt.Errorf("dial %s: sctp: %w", spec, err)
		}
		c, err := dialSCTP(ctx, addrs, sp.Port, cfg)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", spec, err)
		}
		return c, nil
	default:
		if err := cfg.checkTCPPPID(); err != nil {
			return nil, fmt.Errorf("dial %s: %w", spec, err)
		}
		log := cfg.logger()
		var sctpErr error
		if autoUsesSCTP(log) {
			sctx, cancel := context.WithTimeout(ctx, cfg.SCTPAttemptTimeout)
			c, err := dialSCTP(sctx, addrs, sp.Port, cfg)
			cancel()
			if err == nil {
				return c, nil
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("dial %s: %w", spec, ctx.Err())
			}
			log.Debug("sctp dial failed; trying tcp", "spec", spec, "error", err)
			sctpErr = fmt.Errorf("sctp attempt: %w", err)
		}
		c, err := dialTCP(ctx, addrs, sp.Port, cfg)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", spec, errors.Join(sctpErr, err))
		}
		return c, nil
	}
}

// dialTCP connects to the first address that accepts.
func dialTCP(ctx context.Context, addrs []netip.Addr, port uint16, cfg Config) (Conn, error) {
	var errs []error
	for _, a := range addrs {
		var d net.Dialer
		for _, la := range cfg.LocalAddrs {
			if la.Unmap().Is4() == a.Is4() {
				d.LocalAddr = &net.TCPAddr{IP: la.Unmap().AsSlice(), Zone: la.Zone()}
				break
			}
		}
		nc, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, port).String())
		if err == nil && cfg.TLS != nil {
			tc := tls.Client(nc, cfg.TLS)
			if err = tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				return nil, fmt.Errorf("tls handshake with %s: %w", netip.AddrPortFrom(a, port), err)
			}
			return newTCPConn(tc, &cfg), nil
		}
		if err == nil {
			return newTCPConn(nc.(*net.TCPConn), &cfg), nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("tcp dial: %w", errors.Join(errs...))
}
