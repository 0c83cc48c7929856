package pe

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/ishidawataru/sctp"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// transportOf describes listening sockets as a transport parameter: the
// SCTP socket if there is one (SCTP peers, RSPLIB's among them, can only
// use that), else the first TCP socket. Wildcard addresses stay
// unspecified; the Element replaces them by the address the registrar
// sees.
func transportOf(addrs []net.Addr, use asap.TransportUse) asap.Transport {
	var t asap.Transport
	for _, a := range addrs {
		if sa, ok := a.(*sctp.SCTPAddr); ok {
			t = asap.Transport{Kind: asap.ParamSCTPTransport, Port: uint16(sa.Port), Use: use}
			t.Addrs = append(t.Addrs, transport.AddrIPs(sa)...)
			if len(t.Addrs) == 0 {
				t.Addrs = []netip.Addr{netip.IPv4Unspecified()}
			}
			return t
		}
	}
	for _, a := range addrs {
		ips := transport.AddrIPs(a)
		if len(ips) == 0 {
			continue
		}
		return asap.Transport{Kind: asap.ParamTCPTransport, Port: transport.AddrPort(a), Use: use, Addrs: ips[:1]}
	}
	return t
}

// transportString formats a transport parameter for logs:
// "tcp 127.0.0.1:7000".
func transportString(t asap.Transport) string {
	if t.IsZero() {
		return "-"
	}
	return t.Kind.String() + " " + transport.HostList(t.Addrs) + ":" + strconv.Itoa(int(t.Port))
}
