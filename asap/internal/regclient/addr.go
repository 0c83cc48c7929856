package regclient

import (
	"net/netip"
	"strconv"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

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
	return prefix + transport.HostList(addrs) + ":" + strconv.Itoa(int(t.Port)), true
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
