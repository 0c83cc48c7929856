package transport_test

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/ishidawataru/sctp"

	"github.com/rserpool-go/registrar/transport"
)

type strAddr string

func (a strAddr) Network() string { return "mem" }
func (a strAddr) String() string  { return string(a) }

// Ensure addresses of every kind give their unmapped IPs and port.
func TestAddrIPsAndPort(t *testing.T) {
	v6 := net.ParseIP("2001:db8::1")
	for _, tc := range []struct {
		name string
		a    net.Addr
		ips  []string
		port uint16
	}{
		{"tcp v4-mapped", &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 3863}, []string{"192.0.2.1"}, 3863},
		{"udp v6", &net.UDPAddr{IP: v6, Port: 9}, []string{"2001:db8::1"}, 9},
		{"sctp multi-homed", &sctp.SCTPAddr{IPAddrs: []net.IPAddr{{IP: net.ParseIP("192.0.2.1")}, {IP: v6}}, Port: 3864},
			[]string{"192.0.2.1", "2001:db8::1"}, 3864},
		{"host:port string", strAddr("198.51.100.7:7000"), []string{"198.51.100.7"}, 7000},
		{"unparsable string", strAddr("x:1"), nil, 0},
		{"nil", nil, nil, 0},
	} {
		var got []string
		for _, ip := range transport.AddrIPs(tc.a) {
			got = append(got, ip.String())
		}
		if !slices.Equal(got, tc.ips) {
			t.Errorf("%s: AddrIPs = %v, want %v", tc.name, got, tc.ips)
		}
		if p := transport.AddrPort(tc.a); p != tc.port {
			t.Errorf("%s: AddrPort = %d, want %d", tc.name, p, tc.port)
		}
	}
}

// Ensure host lists bracket IPv6 (not IPv4-mapped) and parse back.
func TestHostList(t *testing.T) {
	as := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:198.51.100.7"), netip.MustParseAddr("2001:db8::1")}
	const want = "192.0.2.1,198.51.100.7,[2001:db8::1]"
	if got := transport.HostList(as); got != want {
		t.Fatalf("HostList = %q, want %q", got, want)
	}
	s, err := transport.ParseSpec("tcp:" + want + ":3863")
	if err != nil || len(s.Hosts) != 3 || s.Port != 3863 {
		t.Errorf("ParseSpec of the list: %+v, %v", s, err)
	}
	if got := transport.HostList(nil); got != "" {
		t.Errorf("HostList(nil) = %q", got)
	}
}
