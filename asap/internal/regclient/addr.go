package regclient

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ishidawataru/sctp"

	"github.com/rserpool-go/registrar/asap"
)

// IPs returns the IP addresses of a TCP or SCTP address (every address of
// a multi-homed SCTP endpoint), unmapped. Unknown kinds give nil.
func IPs(a net.Addr) []netip.Addr {
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

// Port returns the port of a TCP, UDP or SCTP address (0 if unknown).
func Port(a net.Addr) uint16 {
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

// HostList formats addresses for an address spec: IPv6 in brackets,
// separated by commas.
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

// Spec turns a transport parameter into an address spec to dial: "tcp:"
// for TCP, no prefix (SCTP, falling back to TCP) for SCTP. ok is false for
// transports this library cannot dial (UDP, UDP-Lite, DCCP) and for
// parameters without a usable address or port.
func Spec(t asap.Transport) (spec string, ok bool) {
	var addrs []netip.Addr
	for _, a := range t.Addrs {
		if a.IsValid() && !a.IsUnspecified() {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 || t.Port == 0 {
		return "", false
	}
	prefix := ""
	switch t.Kind {
	case asap.ParamTCPTransport:
		prefix = "tcp:"
	case asap.ParamSCTPTransport:
	default:
		return "", false
	}
	return prefix + HostList(addrs) + ":" + strconv.Itoa(int(t.Port)), true
}

// ReplaceUnspecified returns addrs with every unspecified address (0.0.0.0,
// ::) replaced by local, the addresses a peer sees this host by; no
// address at all also gives local. Duplicates are dropped.
func ReplaceUnspecified(addrs, local []netip.Addr) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	add := func(a netip.Addr) {
		a = a.Unmap()
		if a.IsValid() && !a.IsUnspecified() && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	wild := len(addrs) == 0
	for _, a := range addrs {
		if a.IsUnspecified() {
			wild = true
			continue
		}
		add(a)
	}
	if wild {
		for _, a := range local {
			add(a)
		}
	}
	return out
}
