package transport

import (
	"net"
	"net/netip"
	"strings"

	"github.com/ishidawataru/sctp"
)

// AddrIPs returns the IP addresses of a TCP, UDP or SCTP address (every
// address of a multi-homed SCTP endpoint), unmapped. Other kinds (the
// in-memory network's) are parsed from their String form; nil if that
// fails.
func AddrIPs(a net.Addr) []netip.Addr {
	var out []netip.Addr
	add := func(ip net.IP) {
		if v, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, v.Unmap())
		}
	}
	switch v := a.(type) {
	case *net.TCPAddr:
		add(v.IP)
	case *net.UDPAddr:
		add(v.IP)
	case *sctp.SCTPAddr:
		for _, ia := range v.IPAddrs {
			add(ia.IP)
		}
	default:
		if a == nil {
			return nil
		}
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			out = append(out, ap.Addr().Unmap())
		}
	}
	return out
}

// AddrPort returns the port of a TCP, UDP or SCTP address, or of another
// kind whose String form is host:port; 0 if unknown.
func AddrPort(a net.Addr) uint16 {
	switch v := a.(type) {
	case *net.TCPAddr:
		return uint16(v.Port)
	case *net.UDPAddr:
		return uint16(v.Port)
	case *sctp.SCTPAddr:
		return uint16(v.Port)
	}
	if a == nil {
		return 0
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Port()
	}
	return 0
}

// HostList formats addresses as the host part of an address spec: IPv4
// (and IPv4-mapped IPv6) plain, IPv6 in brackets, separated by commas.
func HostList(as []netip.Addr) string {
	var b strings.Builder
	for i, a := range as {
		if i > 0 {
			b.WriteByte(',')
		}
		a = a.Unmap()
		if a.Is6() {
			b.WriteByte('[')
			b.WriteString(a.String())
			b.WriteByte(']')
		} else {
			b.WriteString(a.String())
		}
	}
	return b.String()
}
