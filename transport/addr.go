package transport

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Endpoint is where a Listener listens or a Conn ends: the transport, the
// IP addresses (every address of a multi-homed SCTP endpoint; one for
// TCP) and the port. It is this package's own type, so callers need no
// type switch over net.Addr implementations. Addresses are unmapped
// (IPv4-mapped IPv6 becomes IPv4) and carry no zone, as the ASAP and ENRP
// transport parameters hold them.
//
// In-memory endpoints (Pipe, MemNetwork; Kind KindPipe) are named: Name
// is their name ("registrar-a:3863"), Port the number after its last
// colon, if any, and Addrs the IP before it when the name is an IP
// address and port ("127.0.0.1:7000").
//
// Endpoint implements net.Addr (Network, String) for logs.
type Endpoint struct {
	Kind  Kind
	Addrs []netip.Addr
	Port  uint16
	Name  string // in-memory endpoints only
}

// IsZero reports an Endpoint that names nothing.
func (e Endpoint) IsZero() bool { return e.Kind == 0 }

// Network is "tcp", "sctp" or, for in-memory endpoints, "mem".
func (e Endpoint) Network() string {
	if e.Kind == KindPipe {
		return "mem"
	}
	return e.Kind.String()
}

// String is host:port, IPv6 in brackets; the addresses of a multi-homed
// SCTP endpoint are separated by "/" ("10.0.0.1/10.0.0.2:3863", as the
// sctp package writes them, so a list of endpoints can be joined with
// commas). An in-memory endpoint is its name.
func (e Endpoint) String() string {
	if e.Kind == KindPipe {
		return e.Name
	}
	return strings.ReplaceAll(HostList(e.Addrs), ",", "/") + ":" + strconv.Itoa(int(e.Port))
}

// Spec is the address spec Dial takes to reach the endpoint
// ("sctp:10.0.0.1,10.0.0.2:3863", "tcp:[::1]:3863"); the name of an
// in-memory endpoint (which MemNetwork.Dial takes).
func (e Endpoint) Spec() string {
	if e.Kind == KindPipe {
		return e.Name
	}
	return e.Kind.String() + ":" + HostList(e.Addrs) + ":" + strconv.Itoa(int(e.Port))
}

// tcpEndpoint describes a TCP address.
func tcpEndpoint(a net.Addr) Endpoint {
	e := Endpoint{Kind: KindTCP}
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			e.Addrs = []netip.Addr{ip.Unmap()}
		}
		e.Port = uint16(ta.Port)
	}
	return e
}

// sctpEndpoint describes SCTP addresses and a port.
func sctpEndpoint(addrs []netip.Addr, port uint16) Endpoint {
	e := Endpoint{Kind: KindSCTP, Port: port, Addrs: make([]netip.Addr, 0, len(addrs))}
	for _, a := range addrs {
		e.Addrs = append(e.Addrs, a.Unmap().WithZone(""))
	}
	return e
}

// memEndpoint describes an in-memory endpoint by its name.
func memEndpoint(name string) Endpoint {
	e := Endpoint{Kind: KindPipe, Name: name}
	if ap, err := netip.ParseAddrPort(name); err == nil {
		e.Addrs = []netip.Addr{ap.Addr().Unmap().WithZone("")}
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		if p, err := strconv.ParseUint(name[i+1:], 10, 16); err == nil {
			e.Port = uint16(p)
		}
	}
	return e
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
