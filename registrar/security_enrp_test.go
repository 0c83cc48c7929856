package registrar_test

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/transport"
)

func enrpConfig() transport.Config {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDENRP
	return cfg
}

func sendENRP(t *testing.T, c transport.Conn, m enrp.Message) {
	t.Helper()
	b, err := enrp.Pack(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), transport.PPIDENRP, b); err != nil {
		t.Fatal(err)
	}
}

// recvENRP reads ENRP messages on c until one satisfies want (bounded).
func recvENRP(t *testing.T, c transport.Conn, what string, want func(enrp.Message) bool) enrp.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		m, _, err := enrp.Unpack(b, nil)
		if err == nil && want(m) {
			return m
		}
	}
}

func foreignPE(id, home uint32, addr string) asap.PoolElement {
	a := netip.MustParseAddr(addr)
	return asap.PoolElement{ID: id, Home: home, Lifetime: 60000, Policy: asap.Policy{Type: asap.PolicyRoundRobin},
		User: asap.Transport{Kind: asap.ParamTCPTransport, Port: 7000, Use: asap.UseData, Addrs: []netip.Addr{a}},
		ASAP: asap.Transport{Kind: asap.ParamTCPTransport, Port: 7001, Use: asap.UseData, Addrs: []netip.Addr{a}}}
}

// Ensure that a registrar that is not an accepted ENRP peer (not
// configured, from no accepted network) cannot put a PE into a pool with
// ENRP_PRESENCE and ENRP_HANDLE_UPDATE: both are refused with an
// ENRP_ERROR (0x000a), the handlespace is unchanged, and the address it
// announced is never dialed while the registrar's heartbeats go on; the
// configured peer's update is applied.
func TestENRP_StrangerRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	static, err := transport.Listen(ctx, "tcp:127.0.0.1:0", enrpConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer static.Close()
	bait, err := transport.Listen(ctx, "tcp:127.0.0.3:0", enrpConfig())
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.3: %v", err)
	}
	defer bait.Close()
	var dialed atomic.Int32
	go func() {
		for {
			c, err := bait.Accept(context.Background())
			if err != nil {
				return
			}
			dialed.Add(1)
			c.Close()
		}
	}()
	a := startRegistrar(t, "", func(c *registrar.Config) {
		fastPeering(c)
		c.ENRPPeerNetworks = nil
		c.ENRPPeers = []string{"tcp:" + static.Addrs()[0].String()}
	})

	// The stranger: another host (127.0.0.2), an invented registrar ID,
	// announcing the bait's address.
	scfg := enrpConfig()
	scfg.LocalAddrs = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
	enrpAddr := a.ENRPAddrs()[0]
	s, err := transport.Dial(ctx, "tcp:"+enrpAddr.String(), scfg)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	defer s.Close()
	const fake = 0x0badbad0
	baitAddr := bait.Addrs()[0]
	sendENRP(t, s, &enrp.Presence{Header: enrp.Header{Sender: fake, Receiver: a.ID()}, ServerInfo: asap.ServerInfo{ID: fake,
		Transport: asap.Transport{Kind: asap.ParamTCPTransport, Port: baitAddr.Port, Addrs: baitAddr.Addrs}}})
	sendENRP(t, s, &enrp.HandleUpdate{Header: enrp.Header{Sender: fake, Receiver: a.ID()}, Action: enrp.AddPE, PoolHandle: "evil",
		PoolElement: foreignPE(0x66, fake, "127.0.0.2")})
	for _, what := range []string{"the refusal of the PRESENCE", "the refusal of the HANDLE_UPDATE"} {
		e := recvENRP(t, s, what, func(m enrp.Message) bool { _, ok := m.(*enrp.Error); return ok }).(*enrp.Error)
		if e.Error.First() != asap.CauseRejectedSecurity {
			t.Fatalf("%s: got cause %v, want Rejection due to Security Considerations", what, e.Error)
		}
	}

	// The static peer: the registrar dials it; its heartbeats there show
	// that the peering loop ran (the stranger's address would have been
	// dialed by now).
	sp, err := static.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	const friend = 0x00f1e4d0
	sendENRP(t, sp, &enrp.Presence{Header: enrp.Header{Sender: friend, Receiver: a.ID()}, ServerInfo: asap.ServerInfo{ID: friend,
		Transport: asap.Transport{Kind: asap.ParamTCPTransport, Port: static.Addrs()[0].Port, Addrs: static.Addrs()[0].Addrs}}})
	for i := 0; i < 5; i++ {
		recvENRP(t, sp, "a heartbeat PRESENCE", func(m enrp.Message) bool { _, ok := m.(*enrp.Presence); return ok })
	}
	if n := dialed.Load(); n > 0 {
		t.Fatalf("the registrar dialed the address a stranger announced (%d times)", n)
	}
	if pes := a.Handlespace().Pool("evil"); len(pes) > 0 {
		t.Fatalf("the stranger's HANDLE_UPDATE put %+v into the handlespace", pes)
	}
	sendENRP(t, sp, &enrp.HandleUpdate{Header: enrp.Header{Sender: friend, Receiver: a.ID()}, Action: enrp.AddPE, PoolHandle: "good",
		PoolElement: foreignPE(0x77, friend, "127.0.0.1")})
	waitValue(t, 10*time.Second, "the static peer's PE in the handlespace", func() int { return len(a.Handlespace().Pool("good")) }, 1)
}
