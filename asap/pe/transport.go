package pe

import (
	"net/netip"
	"strconv"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// transportOf describes listening sockets as a transport parameter: the
// SCTP socket if there is one (SCTP peers, RSPLIB's among them, can only
// use that), else the first TCP socket. Wildcard addresses stay
// unspecified; the Element replaces them by the address the registrar
// sees.
func transportOf(addrs []transport.Endpoint, use asap.TransportUse) asap.Transport {
	for _, a := range addrs {
		if a.Kind == transport.KindSCTP {
			t := asap.Transport{Kind: asap.ParamSCTPTransport, Port: a.Port, Use: use, Addrs: a.Addrs}
			if len(t.Addrs) == 0 {
				t.Addrs = []netip.Addr{netip.IPv4Unspecified()}
			}
			return t
		}
	}
	for _, a := range addrs {
		if len(a.Addrs) == 0 {
			continue
		}
		return asap.Transport{Kind: asap.ParamTCPTransport, Port: a.Port, Use: use, Addrs: a.Addrs[:1]}
	}
	return asap.Transport{}
}

// transportString formats a transport parameter for logs:
// "tcp 127.0.0.1:7000".
func transportString(t asap.Transport) string {
	if t.IsZero() {
		return "-"
	}
	return t.Kind.String() + " " + transport.HostList(t.Addrs) + ":" + strconv.Itoa(int(t.Port))
}
