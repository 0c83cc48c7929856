package transport_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/transport"
)

// Ensure an endpoint of every kind formats as before (host:port, the
// addresses of a multi-homed SCTP endpoint separated by "/", an in-memory
// name as it is) and gives a spec Dial takes.
func TestEndpoint_Format(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		e                      transport.Endpoint
		network, str, wantSpec string
	}{
		{transport.Endpoint{Kind: transport.KindTCP, Addrs: []netip.Addr{v4}, Port: 3863}, "tcp", "192.0.2.1:3863", "tcp:192.0.2.1:3863"},
		{transport.Endpoint{Kind: transport.KindTCP, Addrs: []netip.Addr{v6}, Port: 9}, "tcp", "[2001:db8::1]:9", "tcp:[2001:db8::1]:9"},
		{transport.Endpoint{Kind: transport.KindSCTP, Addrs: []netip.Addr{v4, v6}, Port: 3864}, "sctp", "192.0.2.1/[2001:db8::1]:3864", "sctp:192.0.2.1,[2001:db8::1]:3864"},
		{transport.Endpoint{Kind: transport.KindPipe, Name: "registrar-a:3863", Port: 3863}, "mem", "registrar-a:3863", "registrar-a:3863"},
	} {
		if tc.e.Network() != tc.network || tc.e.String() != tc.str || tc.e.Spec() != tc.wantSpec {
			t.Errorf("%+v: Network %q String %q Spec %q; want %q %q %q", tc.e, tc.e.Network(), tc.e.String(), tc.e.Spec(), tc.network, tc.str, tc.wantSpec)
		}
		if tc.e.Kind != transport.KindPipe {
			if sp, err := transport.ParseSpec(tc.e.Spec()); err != nil || sp.Port != tc.e.Port || len(sp.Hosts) != len(tc.e.Addrs) {
				t.Errorf("%s does not parse back: %+v, %v", tc.e.Spec(), sp, err)
			}
		}
	}
	if !(transport.Endpoint{}).IsZero() {
		t.Error("zero Endpoint is not IsZero")
	}
}

// Ensure listeners and connections report their endpoints with kind,
// unmapped addresses and real ports, over TCP and in memory.
func TestEndpoint_OfListenersAndConns(t *testing.T) {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := transport.Listen(ctx, "tcp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	la := l.Addrs()[0]
	lo := netip.MustParseAddr("127.0.0.1")
	if la.Kind != transport.KindTCP || len(la.Addrs) != 1 || la.Addrs[0] != lo || la.Port == 0 {
		t.Fatalf("listener endpoint %+v, want TCP 127.0.0.1 with a port", la)
	}
	la.Addrs[0] = netip.IPv6Loopback()
	if l.Addrs()[0].Addrs[0] != lo {
		t.Error("changing what Addrs returned changed the listener's endpoint")
	}
	c, err := transport.Dial(ctx, l.Addrs()[0].Spec(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r := c.RemoteAddr(); r.Kind != transport.KindTCP || r.Port != l.Addrs()[0].Port || r.Addrs[0] != lo {
		t.Errorf("client's remote endpoint %+v, want the listener's", r)
	}
	if s.RemoteAddr().Port != c.LocalAddr().Port || s.LocalAddr().Port != c.RemoteAddr().Port {
		t.Errorf("ends disagree: client %v -> %v, server %v -> %v", c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr())
	}

	n := transport.NewMemNetwork()
	ml, err := n.Listen(ctx, "10.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Close()
	me := ml.Addrs()[0]
	if me.Kind != transport.KindPipe || me.Port == 0 || len(me.Addrs) != 1 || me.Addrs[0] != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("in-memory listener endpoint %+v, want a pipe endpoint of 10.0.0.1 with its port", me)
	}
}
