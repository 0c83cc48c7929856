package transport

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Proto is the protocol part of an address spec.
type Proto uint8

// Protocols of an address spec. Only append.
const (
	// ProtoAuto (no prefix, or "auto:"): Listen binds SCTP and TCP, Dial
	// tries SCTP and falls back to TCP; TCP only where the kernel has no SCTP.
	ProtoAuto Proto = iota
	ProtoTCP        // "tcp:"
	ProtoSCTP       // "sctp:"
	// ProtoTLS ("tls:") is TCP with TLS (Config.TLS): ASAP on IANA's
	// asap-tls port 3864, ENRP on enrp-tls 9902. SCTP has no TLS here.
	ProtoTLS
)

// String returns "auto", "tcp", "sctp" or "tls".
func (p Proto) String() string {
	switch p {
	case ProtoAuto:
		return "auto"
	case ProtoTCP:
		return "tcp"
	case ProtoSCTP:
		return "sctp"
	case ProtoTLS:
		return "tls"
	}
	return fmt.Sprintf("Proto(%d)", uint8(p))
}

// Spec is a parsed address spec: `[tcp:|tls:|sctp:|auto:]host[,host...]:port`.
type Spec struct {
	Proto Proto
	// Hosts are IP literals (IPv6 without brackets, zones allowed) or names,
	// in the order given. Empty means the wildcard address (Listen only).
	// Several hosts are the local addresses of a multi-homed SCTP endpoint
	// (Listen) or the addresses of a multi-homed peer (Dial); TCP listens on
	// each of them and dials them in turn.
	Hosts []string
	// Port is the port; 0 means "choose a free port" (Listen only).
	Port uint16
}

// ParseSpec parses an address spec:
//
//	[tcp:|sctp:|auto:]host[,host...]:port
//
// IPv6 literals go in brackets ("[::1]:3863"); several hosts are separated by
// commas ("sctp:10.0.0.1,10.0.0.2:3863", "[::1],127.0.0.1:3863"); an empty
// host (":3863") is the wildcard address. No prefix means auto.
func ParseSpec(s string) (Spec, error) {
	var sp Spec
	rest := s
	if i := strings.IndexByte(s, ':'); i > 0 && !strings.ContainsAny(s[:i], "[],.") {
		switch prefix := s[:i]; prefix {
		case "tcp":
			sp.Proto, rest = ProtoTCP, s[i+1:]
		case "sctp":
			sp.Proto, rest = ProtoSCTP, s[i+1:]
		case "tls":
			sp.Proto, rest = ProtoTLS, s[i+1:]
		case "auto":
			sp.Proto, rest = ProtoAuto, s[i+1:]
		default:
			// "localhost:3863" has no prefix; "udp:1.2.3.4:5" has an unknown one.
			if strings.Contains(s[i+1:], ":") {
				return Spec{}, fmt.Errorf("%w %q: unknown protocol %q (want tcp, tls, sctp or auto)", ErrBadSpec, s, prefix)
			}
		}
	}
	colon := strings.LastIndexByte(rest, ':')
	if colon < 0 {
		return Spec{}, fmt.Errorf("%w %q: missing port (want host:port)", ErrBadSpec, s)
	}
	hostList, portStr := rest[:colon], rest[colon+1:]
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return Spec{}, fmt.Errorf("%w %q: port %q is not a number in [0, 65535]", ErrBadSpec, s, portStr)
	}
	sp.Port = uint16(port)
	if hostList == "" {
		return sp, nil
	}
	for _, h := range strings.Split(hostList, ",") {
		if h == "" {
			return Spec{}, fmt.Errorf("%w %q: empty host in list", ErrBadSpec, s)
		}
		if strings.HasPrefix(h, "[") {
			if !strings.HasSuffix(h, "]") {
				return Spec{}, fmt.Errorf("%w %q: unterminated bracket in %q", ErrBadSpec, s, h)
			}
			inner := h[1 : len(h)-1]
			a, err := netip.ParseAddr(inner)
			if err != nil || !a.Is6() || a.Is4In6() {
				return Spec{}, fmt.Errorf("%w %q: %q is not an IPv6 address", ErrBadSpec, s, inner)
			}
			sp.Hosts = append(sp.Hosts, inner)
			continue
		}
		if strings.ContainsAny(h, ":[]") {
			return Spec{}, fmt.Errorf("%w %q: IPv6 address %q needs brackets ([addr]:port)", ErrBadSpec, s, h)
		}
		if _, err := netip.ParseAddr(h); err != nil && !validHostname(h) {
			return Spec{}, fmt.Errorf("%w %q: %q is neither an IP address nor a host name", ErrBadSpec, s, h)
		}
		sp.Hosts = append(sp.Hosts, h)
	}
	return sp, nil
}

// validHostname accepts DNS-style names (letters, digits, '-', '.', '_').
func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
		default:
			return false
		}
	}
	return true
}

// String formats the spec so that ParseSpec returns it again. Auto specs have
// no prefix.
func (s Spec) String() string {
	var b strings.Builder
	if s.Proto != ProtoAuto {
		b.WriteString(s.Proto.String())
		b.WriteByte(':')
	}
	for i, h := range s.Hosts {
		if i > 0 {
			b.WriteByte(',')
		}
		if strings.Contains(h, ":") {
			b.WriteByte('[')
			b.WriteString(h)
			b.WriteByte(']')
		} else {
			b.WriteString(h)
		}
	}
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(int(s.Port)))
	return b.String()
}

// resolve turns the hosts into addresses, in order, without duplicates. Names
// are looked up with the default resolver; every address of a name is used.
// An empty host list yields nil (the wildcard).
func (s Spec) resolve(ctx context.Context) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := make(map[netip.Addr]bool)
	add := func(a netip.Addr) {
		a = a.Unmap()
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, h := range s.Hosts {
		if a, err := netip.ParseAddr(h); err == nil {
			add(a)
			continue
		}
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", h)
		if err != nil {
			return nil, fmt.Errorf("resolve %q: %w", h, err)
		}
		for _, a := range addrs {
			add(a)
		}
	}
	return out, nil
}
