package registrar_test

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
	"github.com/rserpool-go/registrar/transport"
)

func fastPeering(c *registrar.Config) {
	// The test's registrars peer over loopback, a registrar started first
	// without naming the other: accept peers from loopback.
	c.ENRPPeerNetworks = []string{"127.0.0.0/8"}
	c.PeerHeartbeat = registrar.Duration(100 * time.Millisecond)
	// A peer is declared dead only after a second of silence: short enough
	// for the takeover test, long enough that a busy machine delaying a
	// heartbeat never makes a live peer look dead.
	c.MaxTimeLastHeard = registrar.Duration(time.Second)
	c.MaxTimeNoResponse = registrar.Duration(time.Second)
	c.TakeoverExpiry = registrar.Duration(500 * time.Millisecond)
	c.KeepAliveInterval = registrar.Duration(200 * time.Millisecond)
	c.KeepAliveTimeout = registrar.Duration(time.Second)
}

// Ensure two registrars that are not one cluster peer over ENRP: the
// initial handle table sync, HANDLE_UPDATEs both ways, deregistration,
// and the takeover of a peer that dies (its PEs get H=1 keep-alives from
// the survivor and stay).
func TestENRPPeering(t *testing.T) {
	a := startRegistrar(t, "", fastPeering)
	pe := newASAPPE(t)
	clA := dial(t, a, true)
	for i := uint32(1); i <= 3; i++ {
		mustRegister(t, clA, "pool", pe.element(i))
	}
	// B starts later and peers with A: the initial sync brings A's PEs.
	b := startRegistrar(t, "", func(c *registrar.Config) {
		fastPeering(c)
		c.ENRPPeers = []string{a.ENRPAddrs()[0].Network() + ":" + a.ENRPAddrs()[0].String()}
	})
	waitValue(t, 10*time.Second, "A's PEs at B", func() int { return len(b.Handlespace().Owned(a.ID())) }, 3)

	// Updates both ways.
	clB := dial(t, b, true)
	mustRegister(t, clB, "pool", pe.element(10))
	waitValue(t, 10*time.Second, "B's PE at A", func() int { return len(a.Handlespace().Owned(b.ID())) }, 1)
	mustRegister(t, clA, "pool", pe.element(4))
	waitValue(t, 10*time.Second, "A's new PE at B", func() int { return len(b.Handlespace().Owned(a.ID())) }, 4)
	if resp, ok := clA.call(&asap.Deregistration{PoolHandle: "pool", ID: 4}).(*asap.DeregistrationResponse); !ok || resp.Error != nil {
		t.Fatalf("deregistration: %+v", resp)
	}
	waitValue(t, 10*time.Second, "deregistration at B", func() int { return len(b.Handlespace().Owned(a.ID())) }, 3)
	// The HANDLE_UPDATEs show in /metrics: A sent the add and the delete of
	// PE 4 and received B's add; B the other way round. A sender counts
	// once its sends returned, which may be after the peer applied them:
	// wait for the counts.
	for _, m := range []struct {
		r      *testRegistrar
		series string
		min    float64
	}{{a, `rsp_enrp_handle_updates_total{direction="sent"}`, 2}, {a, `rsp_enrp_handle_updates_total{direction="received"}`, 1},
		{b, `rsp_enrp_handle_updates_total{direction="sent"}`, 1}, {b, `rsp_enrp_handle_updates_total{direction="received"}`, 2}} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			v := metricValue(t, m.r, m.series)
			if v >= m.min {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s at %08x = %v after 10s, want at least %v", m.series, m.r.ID(), v, m.min)
				break
			}
		}
	}
	if a.Handlespace().Checksum(a.ID()) != b.Handlespace().Checksum(a.ID()) {
		t.Errorf("checksums of A's PEs differ: A %04x, B %04x", a.Handlespace().Checksum(a.ID()), b.Handlespace().Checksum(a.ID()))
	}

	// A dies: B takes its PEs over and becomes their home.
	a.Crash()
	waitFor(t, 15*time.Second, "takeover of A's PEs by B", func() bool {
		return len(b.Handlespace().Owned(a.ID())) == 0 && len(b.Handlespace().Owned(b.ID())) == 4
	})
	waitFor(t, 10*time.Second, "H=1 keep-alives from B", func() bool { return pe.homeKeepAlives()[b.ID()] > 0 })
	// Three keep-alive rounds answered, each of which would have removed
	// a PE whose answers did not count: the adopted ones get theirs at
	// their ASAP endpoint, B's own on the connection it registered on.
	sinceB := clB.kas.Load()
	pe.waitRounds(t, []uint32{1, 2, 3}, pe.keepAlivesPerPE(), 3)
	waitFor(t, 10*time.Second, "three more keep-alives for B's own PE", func() bool { return clB.kas.Load() >= sinceB+3 })
	if resp := resolve(t, clB, "pool", asap.ItemsAll); len(resp.PEs) != 4 {
		t.Errorf("after the takeover B resolves %d PEs, want 4", len(resp.PEs))
	}
}

// recvPresence reads ENRP messages from c until a PRESENCE arrives.
func recvPresence(t *testing.T, ctx context.Context, c transport.Conn) *enrp.Presence {
	t.Helper()
	for {
		_, b, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("waiting for a PRESENCE: %v", err)
		}
		m, _, err := enrp.Unpack(b, nil)
		if err != nil {
			t.Fatalf("undecodable ENRP message: %v", err)
		}
		if p, ok := m.(*enrp.Presence); ok {
			return p
		}
	}
}

// Ensure a registrar greets a peer that opens an association to it with a
// PRESENCE on that association at once, not at its next heartbeat: RSPLIB
// refuses the PRESENCEs we send on our own association (whose port is not
// our ENRP port), so until the greeting it does not know us as a peer,
// and a takeover of our PEs after we die would not happen (the heartbeat
// here is an hour: only the greeting can answer in time).
func TestENRPGreetsAPeerOnItsAssociation(t *testing.T) {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDENRP
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sp := newStaticPeer(t)
	peerAddr := sp.addr
	logger, logs := sharedtest.BufferLogger(t, "registrar")
	a := startRegistrar(t, "", func(c *registrar.Config) {
		sp.config(c)
		c.Logger = logger
	})
	// A dials the static peer and says hello on its own association; its
	// first heartbeat round follows at once (sending another), and the
	// next is an hour away.
	ours := sp.acceptConn()
	for i := 0; i < 2; i++ {
		if p := recvPresence(t, ctx, ours); p.Sender != a.ID() {
			t.Fatalf("PRESENCE on A's association from %08x, want A %08x", p.Sender, a.ID())
		}
	}
	// The peer opens its own association to A's ENRP port and sends its
	// PRESENCE (no reply asked for).
	const peerID = 0x5eed0001
	theirs, err := transport.Dial(ctx, a.ENRPAddrs()[0].Network()+":"+a.ENRPAddrs()[0].String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	si := sp.serverInfo(peerID)
	b, err := enrp.Pack(&enrp.Presence{Header: enrp.Header{Sender: peerID}, ServerInfo: si})
	if err != nil {
		t.Fatal(err)
	}
	if err := theirs.Send(ctx, transport.PPIDENRP, b); err != nil {
		t.Fatal(err)
	}
	// A has its own association to the peer too, so the greeting asks
	// for a reply (TestENRPDuplicateAssociations: which one A keeps).
	p := recvPresence(t, ctx, theirs)
	if p.Sender != a.ID() || p.Receiver != peerID || !p.ReplyRequired {
		t.Errorf("greeting: sender %08x receiver %08x R=%v; want A's PRESENCE to %08x asking for a reply", p.Sender, p.Receiver, p.ReplyRequired, peerID)
	}
	// The static peer is logged by its address until it names itself,
	// and then as a new peer with its ID.
	logs.Wait(t, "the static peer logged as a new ENRP peer",
		regexp.MustCompile(`new ENRP peer: .*peer=0x5eed0001 address=tcp:`+regexp.QuoteMeta(peerAddr.String())+` static=true`), 10*time.Second)
	if strings.Contains(logs.String(), "peer=0x00000000") {
		t.Errorf("a peer was logged with ID 0; log:\n%s", logs.String())
	}
}

// fakePeer is a hand-driven ENRP peer on one association.
type fakePeer struct {
	t  *testing.T
	c  transport.Conn
	in chan enrp.Message
}

// dialFakePeer opens an ENRP association to r's ENRP port and serves it
// as a hand-driven peer (closed when the test ends).
func dialFakePeer(t *testing.T, r *testRegistrar) *fakePeer {
	t.Helper()
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDENRP
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := transport.Dial(ctx, r.ENRPAddrs()[0].Network()+":"+r.ENRPAddrs()[0].String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return newFakePeer(t, c)
}

func newFakePeer(t *testing.T, c transport.Conn) *fakePeer {
	f := &fakePeer{t: t, c: c, in: make(chan enrp.Message, 64)}
	go func() {
		defer close(f.in)
		for {
			_, b, err := c.Recv(context.Background())
			if err != nil {
				return
			}
			if m, _, err := enrp.Unpack(b, nil); err == nil {
				f.in <- m
			}
		}
	}()
	return f
}

func (f *fakePeer) send(m enrp.Message) {
	f.t.Helper()
	b, err := enrp.Pack(m)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.c.Send(ctx, transport.PPIDENRP, b); err != nil {
		f.t.Fatal(err)
	}
}

// wait returns the next message that match accepts, within 10 s.
func (f *fakePeer) wait(what string, match func(enrp.Message) bool) enrp.Message {
	f.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-f.in:
			if !ok {
				f.t.Fatalf("association closed waiting for %s", what)
			}
			if match(m) {
				return m
			}
		case <-deadline:
			f.t.Fatalf("no %s within 10s", what)
		}
	}
}

// staticPeer is a hand-driven ENRP peer that the registrar under test
// names as its static peer: a TCP listener (closed when the test ends)
// that the registrar dials.
type staticPeer struct {
	t    *testing.T
	ln   transport.Listener
	addr transport.Endpoint
}

func newStaticPeer(t *testing.T) *staticPeer {
	t.Helper()
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDENRP
	ln, err := transport.Listen(context.Background(), "tcp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &staticPeer{t: t, ln: ln, addr: ln.Addrs()[0]}
}

// config makes a registrar name the peer, with heartbeats and silence
// limits of an hour and no mentor phase: only the test drives the peer.
func (s *staticPeer) config(c *registrar.Config) {
	fastPeering(c)
	c.PeerHeartbeat = registrar.Duration(time.Hour)
	c.MaxTimeLastHeard = registrar.Duration(time.Hour)
	c.ENRPPeers = []string{"tcp:" + s.addr.String()}
	c.MentorTimeout = 0
}

// acceptConn waits (20 s) for the registrar's association to the peer.
func (s *staticPeer) acceptConn() transport.Conn {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := s.ln.Accept(ctx)
	if err != nil {
		s.t.Fatalf("waiting for the registrar's association to its static peer: %v", err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// accept is acceptConn served as a fakePeer.
func (s *staticPeer) accept() *fakePeer { return newFakePeer(s.t, s.acceptConn()) }

// serverInfo is the Server Information the peer announces as id: its
// listener's address.
func (s *staticPeer) serverInfo(id uint32) asap.ServerInfo {
	return asap.ServerInfo{ID: id, Transport: asap.Transport{Kind: asap.ParamSCTPTransport, Use: asap.UseData,
		Addrs: s.addr.Addrs, Port: s.addr.Port}}
}

// Ensure a registrar restarted on its data dir does not reclaim a PE a
// foreign registrar took over while it was down: the peer's own-PEs table
// naming the PE wins over the handlespace restored at the start (the PE
// did not register here since), our own-PEs answer leaves the PE out, and
// supervision stops for it instead of removing it as "lifetime expired"
// (or as a keep-alive timeout) at its new home's expense.
func TestENRPRestartedRegistrarYieldsTakenOverPE(t *testing.T) {
	dir := t.TempDir()
	a := startRegistrar(t, dir, nil)
	pe := newASAPPE(t)
	cl := dial(t, a, true)
	elem := pe.element(1)
	mustRegister(t, cl, "pool", elem)
	ours := a.ID()
	a.Crash()

	// The peer took the PE over meanwhile; A comes back with it as a
	// static peer.
	sp := newStaticPeer(t)
	logger, logs := sharedtest.BufferLogger(t, "registrar")
	a = startRegistrar(t, dir, func(c *registrar.Config) {
		sp.config(c)
		c.Logger = logger
	})
	if a.ID() != ours {
		t.Fatalf("restarted with ID %08x, want %08x", a.ID(), ours)
	}
	if got, ok := a.Handlespace().Lookup("pool", 1); !ok || got.Element.Home != ours {
		t.Fatalf("after the restart: PE %+v found %v; want it restored, homed here", got.Element, ok)
	}
	f := sp.accept()
	const peerID = 0x5eed0002
	si := sp.serverInfo(peerID)
	f.send(&enrp.Presence{Header: enrp.Header{Sender: peerID, Receiver: ours}, Checksum: 0x1234, ServerInfo: si})
	f.wait("A's own-PEs request", func(m enrp.Message) bool {
		r, ok := m.(*enrp.HandleTableRequest)
		return ok && r.OwnOnly
	})
	taken := elem
	taken.Home = peerID
	f.send(&enrp.HandleTableResponse{Header: enrp.Header{Sender: peerID, Receiver: ours},
		Pools: []enrp.PoolEntry{{PoolHandle: "pool", PEs: []asap.PoolElement{taken}}}})
	waitValue(t, 10*time.Second, "the PE's home at A", func() uint32 {
		got, _ := a.Handlespace().Lookup("pool", 1)
		return got.Element.Home
	}, peerID)

	// The peer asks A for A's own PEs: the PE is not among them.
	f.send(&enrp.HandleTableRequest{Header: enrp.Header{Sender: peerID, Receiver: ours}, OwnOnly: true})
	resp := f.wait("A's own-PEs answer", func(m enrp.Message) bool { _, ok := m.(*enrp.HandleTableResponse); return ok }).(*enrp.HandleTableResponse)
	if resp.Reject || len(resp.Pools) != 0 {
		t.Errorf("A's own-PEs answer: reject %v, pools %+v; want no PE", resp.Reject, resp.Pools)
	}
	// Supervision gives the PE up at its next round, without removing it.
	logs.Wait(t, "supervision giving up the PE homed elsewhere",
		regexp.MustCompile(`PE homed elsewhere now: supervision ends.*pe=00000001`), 15*time.Second)
	if got, ok := a.Handlespace().Lookup("pool", 1); !ok || got.Element.Home != peerID {
		t.Errorf("after supervision ended: PE %+v found %v; want it kept, homed at the peer", got.Element, ok)
	}
	if strings.Contains(logs.String(), "PE removed") {
		t.Errorf("A removed a PE:\n%s", logs.String())
	}
}

// Ensure a handle table request from an ENRP server that never announced
// itself is refused (R bit), as RSPLIB does, and answered once the same
// server sent its PRESENCE.
func TestENRPTableRequestFromUnknownPeer(t *testing.T) {
	a := startRegistrar(t, "", func(c *registrar.Config) { c.ENRPPeerNetworks = []string{"127.0.0.0/8"} })
	cl := dial(t, a, true)
	mustRegister(t, cl, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	f := dialFakePeer(t, a)
	const peerID = 0x5eed0003
	isTable := func(m enrp.Message) bool { _, ok := m.(*enrp.HandleTableResponse); return ok }
	f.send(&enrp.HandleTableRequest{Header: enrp.Header{Sender: peerID, Receiver: a.ID()}})
	if resp := f.wait("an answer to the unknown server", isTable).(*enrp.HandleTableResponse); !resp.Reject || len(resp.Pools) != 0 {
		t.Errorf("answer to a server that sent no PRESENCE: reject %v, pools %+v; want a rejection", resp.Reject, resp.Pools)
	}
	si := asap.ServerInfo{ID: peerID, Transport: asap.Transport{Kind: asap.ParamSCTPTransport, Use: asap.UseData,
		Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Port: 1}}
	f.send(&enrp.Presence{Header: enrp.Header{Sender: peerID, Receiver: a.ID()}, ServerInfo: si})
	f.send(&enrp.HandleTableRequest{Header: enrp.Header{Sender: peerID, Receiver: a.ID()}})
	resp := f.wait("an answer once the server announced itself", isTable).(*enrp.HandleTableResponse)
	if resp.Reject || len(resp.Pools) != 1 || len(resp.Pools[0].PEs) != 1 {
		t.Errorf("answer after a PRESENCE: reject %v, pools %+v; want the one PE", resp.Reject, resp.Pools)
	}
}

// Ensure the T bit of a peer's HANDLE_UPDATE (takeover suggestion) is
// ignored by default, as RFC 5353 reserves it, and with
// ENRPTakeoverSuggestion makes the registrar claim the PE: an
// ENDPOINT_KEEP_ALIVE with the H bit at the PE's ASAP endpoint, also when
// the suggestion is RSPLIB's second copy of an update already applied.
func TestENRPTakeoverSuggestion(t *testing.T) {
	for _, honour := range []bool{false, true} {
		t.Run(map[bool]string{false: "ignored", true: "honoured"}[honour], func(t *testing.T) {
			a := startRegistrar(t, "", func(c *registrar.Config) {
				c.ENRPTakeoverSuggestion = honour
				c.ENRPPeerNetworks = []string{"127.0.0.0/8"} // the test's peer dials in from loopback
			})
			pe := newASAPPE(t)
			f := dialFakePeer(t, a)
			const peerID = 0x5eed0004
			si := asap.ServerInfo{ID: peerID, Transport: asap.Transport{Kind: asap.ParamSCTPTransport, Use: asap.UseData,
				Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Port: 1}}
			f.send(&enrp.Presence{Header: enrp.Header{Sender: peerID, Receiver: a.ID()}, ServerInfo: si})
			elem := pe.element(1)
			elem.Home = peerID
			hdr := enrp.Header{Sender: peerID, Receiver: a.ID()}
			f.send(&enrp.HandleUpdate{Header: hdr, Action: enrp.AddPE, PoolHandle: "pool", PoolElement: elem})
			waitValue(t, 10*time.Second, "the peer's PE at A, homed at the peer", func() uint32 {
				got, _ := a.Handlespace().Lookup("pool", 1)
				return got.Element.Home
			}, peerID)
			f.send(&enrp.HandleUpdate{Header: hdr, TakeoverSuggested: true, Action: enrp.AddPE, PoolHandle: "pool", PoolElement: elem})
			// A PRESENCE asking for a reply, on the same association: its
			// answer comes after A handled the suggestion.
			f.send(&enrp.Presence{Header: hdr, ReplyRequired: true, ServerInfo: si})
			f.wait("A's answer to the PRESENCE", func(m enrp.Message) bool {
				p, ok := m.(*enrp.Presence)
				return ok && p.Sender == a.ID() && !p.ReplyRequired
			})
			if !honour {
				if n := pe.homeKeepAlives()[a.ID()]; n != 0 {
					t.Errorf("A sent %d H=1 keep-alives for a suggestion it should ignore", n)
				}
				return
			}
			waitFor(t, 10*time.Second, "A's H=1 keep-alive at the PE's ASAP endpoint", func() bool { return pe.homeKeepAlives()[a.ID()] > 0 })
		})
	}
}

// Ensure the ENRP start-up phase: a registrar with a static peer takes it
// as its mentor and has the peer's whole handle table (W=0: the peer's
// own PEs and those it learnt from its other peers) before it is ready to
// serve ASAP; with a peer that never answers it serves after
// MentorTimeout.
func TestENRPMentorStartup(t *testing.T) {
	a := startRegistrar(t, "", func(c *registrar.Config) { c.ENRPPeerNetworks = []string{"127.0.0.0/8"} })
	clA := dial(t, a, true)
	for i := uint32(1); i <= 3; i++ {
		mustRegister(t, clA, "pool", testPE(i, uint16(7000+i), asap.Policy{Type: asap.PolicyRoundRobin}))
	}
	// A learnt a PE of a third registrar C from C itself.
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDENRP
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := transport.Dial(ctx, a.ENRPAddrs()[0].Network()+":"+a.ENRPAddrs()[0].String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fc := newFakePeer(t, c)
	const cID = 0x5eed0005
	si := asap.ServerInfo{ID: cID, Transport: asap.Transport{Kind: asap.ParamSCTPTransport, Use: asap.UseData,
		Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Port: 1}}
	fc.send(&enrp.Presence{Header: enrp.Header{Sender: cID, Receiver: a.ID()}, ServerInfo: si})
	cPE := testPE(100, 7100, asap.Policy{Type: asap.PolicyRoundRobin})
	cPE.Home = cID
	fc.send(&enrp.HandleUpdate{Header: enrp.Header{Sender: cID, Receiver: a.ID()}, Action: enrp.AddPE, PoolHandle: "pool", PoolElement: cPE})
	waitValue(t, 10*time.Second, "C's PE at A", func() int { return len(a.Handlespace().Owned(cID)) }, 1)

	logger, logs := sharedtest.BufferLogger(t, "registrar")
	b := startRegistrar(t, "", func(c *registrar.Config) {
		c.ENRPPeers = []string{a.ENRPAddrs()[0].Network() + ":" + a.ENRPAddrs()[0].String()}
		c.MentorTimeout = registrar.Duration(time.Minute) // only the mentor's table can end the phase in time
		c.Logger = logger
	})
	// Ready: no waiting from here on.
	if n := len(b.Handlespace().Owned(a.ID())); n != 3 {
		t.Errorf("B ready with %d of A's PEs, want 3 (the mentor's table first)", n)
	}
	if n := len(b.Handlespace().Owned(cID)); n != 1 {
		t.Errorf("B ready with %d of C's PEs (learnt through the mentor), want 1", n)
	}
	if !strings.Contains(logs.String(), "ENRP start-up: handle table from the mentor peer; serving ASAP") {
		t.Errorf("B's start-up did not end with the mentor's table; log:\n%s", logs.String())
	}
	clB := dial(t, b, true)
	if resp := resolve(t, clB, "pool", asap.ItemsAll); len(resp.PEs) != 4 {
		t.Errorf("B resolves %d PEs at once, want A's 3 and C's 1", len(resp.PEs))
	}

	// A peer that never answers: the phase ends after the timeout.
	ln, err := transport.Listen(ctx, "tcp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	logger2, logs2 := sharedtest.BufferLogger(t, "registrar")
	start := time.Now()
	startRegistrar(t, "", func(c *registrar.Config) {
		c.ENRPPeers = []string{"tcp:" + ln.Addrs()[0].String()}
		c.MentorTimeout = registrar.Duration(300 * time.Millisecond)
		c.Logger = logger2
	})
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("ready after %v, before the mentor timeout (300ms)", d)
	}
	if !strings.Contains(logs2.String(), "ENRP start-up: no mentor peer's handle table in time; serving ASAP") {
		t.Errorf("start-up with a silent peer did not time out; log:\n%s", logs2.String())
	}
}

// Ensure the outcome when a foreign peer tries to take over a dead member
// of our cluster: the cluster re-homes the member's PEs by raft, the new
// home tells the peer at once (HANDLE_UPDATE ADD_PE naming itself), so the
// peer ends up with the same homes as the cluster, and no member
// acknowledges the peer's INIT_TAKEOVER (its takeover cannot complete,
// and the PEs are neither lost nor homed twice).
func TestENRPForeignTakeoverOfAClusterMember(t *testing.T) {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDENRP
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ln, err := transport.Listen(ctx, "tcp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peerAddr := ln.Addrs()[0]
	const peerID = 0x5eed0006
	si := asap.ServerInfo{ID: peerID, Transport: asap.Transport{Kind: asap.ParamSCTPTransport, Use: asap.UseData,
		Addrs: peerAddr.Addrs, Port: peerAddr.Port}}
	// The peer: every member dials it; it announces itself on each
	// association and collects what the members send.
	type msg struct {
		f *fakePeer
		m enrp.Message
	}
	got := make(chan msg, 1024)
	go func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			f := newFakePeer(t, c)
			go func() {
				for m := range f.in {
					if p, ok := m.(*enrp.Presence); ok && p.ReplyRequired {
						b, _ := enrp.Pack(&enrp.Presence{Header: enrp.Header{Sender: peerID, Receiver: p.Sender}, ServerInfo: si})
						c.Send(context.Background(), transport.PPIDENRP, b)
					}
					got <- msg{f, m}
				}
			}()
		}
	}()
	nodes := registrartest.StartCluster(t, 3, func(c *registrar.Config) {
		c.ENRPPeers = []string{"tcp:" + peerAddr.String()}
		c.MentorTimeout = 0
		c.KeepAliveInterval = registrar.Duration(200 * time.Millisecond)
	})
	pe := newASAPPE(t)
	cl := dial(t, nodes[0], true)
	mustRegister(t, cl, "pool", pe.element(1))
	dead := nodes[0].ID()
	assoc := map[uint32]*fakePeer{} // member -> the peer's association with it
	for len(assoc) < 3 {
		select {
		case x := <-got:
			if p, ok := x.m.(*enrp.Presence); ok {
				assoc[p.Sender] = x.f
			}
		case <-ctx.Done():
			t.Fatalf("the peer heard a PRESENCE from %d of the 3 members", len(assoc))
		}
	}
	nodes[0].Crash()

	// The cluster re-homes the PE; its new home tells the peer.
	var home uint32
	waitFor(t, 30*time.Second, "the cluster re-homing the dead member's PE", func() bool {
		cur, ok := nodes[1].Handlespace().Lookup("pool", 1)
		home = cur.Element.Home
		return ok && home != dead
	})
	for {
		var x msg
		select {
		case x = <-got:
		case <-ctx.Done():
			t.Fatalf("the peer was not told the PE's new home %08x", home)
		}
		if u, ok := x.m.(*enrp.HandleUpdate); ok && u.Action == enrp.AddPE && u.PoolElement.ID == 1 && u.PoolElement.Home == home {
			if u.Sender != home {
				t.Errorf("the new home %08x was announced by %08x", home, u.Sender)
			}
			break
		}
	}
	// The peer tries to take the dead member over: a live member does not
	// acknowledge (its answer to the LIST_REQUEST that follows, on the
	// same association, comes after any acknowledgement would have).
	f := assoc[nodes[1].ID()]
	hdr := enrp.Header{Sender: peerID, Receiver: nodes[1].ID()}
	f.send(enrp.NewInitTakeover(peerID, nodes[1].ID(), dead))
	f.send(&enrp.ListRequest{Header: hdr})
	for done := false; !done; {
		var x msg
		select {
		case x = <-got:
		case <-ctx.Done():
			t.Fatal("no answer to the LIST_REQUEST after the INIT_TAKEOVER")
		}
		if x.f != f {
			continue
		}
		switch x.m.(type) {
		case *enrp.InitTakeoverAck:
			t.Fatal("a member acknowledged a foreign takeover of a dead member of its cluster")
		case *enrp.ListResponse:
			done = true
		}
	}
	for _, n := range nodes[1:] {
		waitValue(t, 10*time.Second, fmt.Sprintf("the PE's home at member %08x", n.ID()), func() uint32 {
			cur, _ := n.Handlespace().Lookup("pool", 1)
			return cur.Element.Home
		}, home)
	}
}

// Ensure a server that announced itself on its association gets the
// handle table even when it is not accepted as a peer (hsdump: a
// PRESENCE first, from an address no rule trusts), as RSPLIB answers it.
func TestENRPTableRequestAfterRefusedPresence(t *testing.T) {
	a := startRegistrar(t, "", nil) // trusts no address
	cl := dial(t, a, true)
	mustRegister(t, cl, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	f := dialFakePeer(t, a)
	const dumpID = 0x5eed0007
	si := asap.ServerInfo{ID: dumpID, Transport: asap.Transport{Kind: asap.ParamSCTPTransport, Use: asap.UseData,
		Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Port: 1}}
	f.send(&enrp.Presence{Header: enrp.Header{Sender: dumpID}, ServerInfo: si})
	f.send(&enrp.HandleTableRequest{Header: enrp.Header{Sender: dumpID}})
	resp := f.wait("the table", func(m enrp.Message) bool { _, ok := m.(*enrp.HandleTableResponse); return ok }).(*enrp.HandleTableResponse)
	if resp.Reject || len(resp.Pools) != 1 {
		t.Errorf("answer to a server that announced itself: reject %v, pools %+v; want the table", resp.Reject, resp.Pools)
	}
}

// Ensure a registrar that ends up with two associations to one ENRP peer
// (both sides dialled at the same moment; over SCTP the two are between
// the same endpoints and one of them is dead) asks for a reply on both,
// keeps the one the peer answers on and closes the other, and sends its
// HANDLE_UPDATEs on the one it keeps. When the peer answers on both (TCP
// keeps both alive), both sides keep the one the registrar with the
// higher ID dialled.
func TestENRPDuplicateAssociations(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		answerOurs, answerTheirs bool
		peerHigher               bool
		keepOurs                 bool // A's own association stays
	}{
		{"peer answers on its own only", false, true, false, false},
		{"peer answers on ours only", true, false, true, true},
		{"peer answers on both, its ID higher", true, true, true, false},
		{"peer answers on both, its ID lower", true, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sp := newStaticPeer(t)
			a := startRegistrar(t, "", func(c *registrar.Config) {
				sp.config(c)
				// The peer's answers must arrive within the probe time
				// to count: 5 s (the default) even on a busy machine.
				c.MaxTimeNoResponse = registrar.Duration(5 * time.Second)
			})
			peerID := a.ID() - 1
			if tc.peerHigher {
				peerID = a.ID() + 1
			}
			if peerID == 0 || (peerID > a.ID()) != tc.peerHigher {
				t.Skipf("registrar ID %08x leaves no peer ID on the wanted side", a.ID())
			}
			ours := sp.accept()
			isPresence := func(m enrp.Message) bool { _, ok := m.(*enrp.Presence); return ok }
			ours.wait("A's PRESENCE on its own association", isPresence)

			// The peer opens its own association and names itself on it.
			theirs := dialFakePeer(t, a)
			si := sp.serverInfo(peerID)
			theirs.send(&enrp.Presence{Header: enrp.Header{Sender: peerID}, ServerInfo: si})
			// A now has two associations to the peer: it asks for a reply
			// on each. The peer answers where the case says.
			probe := func(m enrp.Message) bool {
				p, ok := m.(*enrp.Presence)
				return ok && p.ReplyRequired && p.Receiver == peerID
			}
			for _, side := range []struct {
				f      *fakePeer
				answer bool
				name   string
			}{{theirs, tc.answerTheirs, "the peer's"}, {ours, tc.answerOurs, "A's"}} {
				side.f.wait("A's PRESENCE asking for a reply on "+side.name+" association", probe)
				if side.answer {
					side.f.send(&enrp.Presence{Header: enrp.Header{Sender: peerID, Receiver: a.ID()}, ServerInfo: si})
				}
			}
			kept, closed := theirs, ours
			if tc.keepOurs {
				kept, closed = ours, theirs
			}
			// A closes the other one once the probe time is over.
			deadline := time.After(30 * time.Second)
		drain:
			for {
				select {
				case _, ok := <-closed.in:
					if !ok {
						break drain
					}
				case <-deadline:
					t.Fatalf("A did not close the association it should drop within 30s (probe time 5s)")
				}
			}
			// A's PE reaches the peer as a HANDLE_UPDATE on the one kept.
			pe := newASAPPE(t)
			mustRegister(t, dial(t, a, true), "pool", pe.element(1))
			kept.wait("A's HANDLE_UPDATE on the association it kept", func(m enrp.Message) bool {
				u, ok := m.(*enrp.HandleUpdate)
				return ok && u.PoolHandle == "pool" && u.PoolElement.ID == 1
			})
			select {
			case _, ok := <-kept.in:
				if !ok {
					t.Errorf("A closed the association it should keep too")
				}
			default:
			}
		})
	}
}

// Ensure the PE checksum in a restarted registrar's PRESENCE is that of
// the own-PEs table it serves: PEs restored at the start are left out of
// both until they register here again (a foreign registrar may have
// taken them over meanwhile). With them counted, a peer would find the
// checksum and the table apart after every sync, and resync at every
// PRESENCE.
func TestENRPPresenceChecksumLeavesOutRestoredPEs(t *testing.T) {
	dir := t.TempDir()
	a := startRegistrar(t, dir, nil)
	pe := newASAPPE(t)
	cl := dial(t, a, true)
	mustRegister(t, cl, "pool", pe.element(1))
	mustRegister(t, cl, "pool", pe.element(2))
	a.Crash()

	sp := newStaticPeer(t)
	a = startRegistrar(t, dir, sp.config)
	if n := len(a.Handlespace().Owned(a.ID())); n != 2 {
		t.Fatalf("after the restart A owns %d PEs, want the 2 restored", n)
	}
	f := sp.accept()
	var none, one asap.Checksum
	one.Add("pool", 1)
	p := f.wait("A's PRESENCE", func(m enrp.Message) bool { _, ok := m.(*enrp.Presence); return ok }).(*enrp.Presence)
	if p.Checksum != none.Value() {
		t.Errorf("PRESENCE checksum with two restored PEs: 0x%04x, want 0x%04x (none: its own-PEs table lists neither)", p.Checksum, none.Value())
	}

	// PE 1 registers again (after its own restart, on a new connection):
	// it counts again.
	mustRegister(t, dial(t, a, true), "pool", pe.element(1))
	const peerID = 0x5eed0003
	si := sp.serverInfo(peerID)
	f.send(&enrp.Presence{Header: enrp.Header{Sender: peerID, Receiver: a.ID()}, ReplyRequired: true, Checksum: 0xffff, ServerInfo: si})
	p = f.wait("A's reply PRESENCE", func(m enrp.Message) bool {
		p, ok := m.(*enrp.Presence)
		return ok && !p.ReplyRequired
	}).(*enrp.Presence)
	if p.Checksum != one.Value() {
		t.Errorf("PRESENCE checksum after PE 1 registered again: 0x%04x, want 0x%04x (PE 1 only)", p.Checksum, one.Value())
	}
	// Its own-PEs table agrees.
	f.send(&enrp.HandleTableRequest{Header: enrp.Header{Sender: peerID, Receiver: a.ID()}, OwnOnly: true})
	resp := f.wait("A's own-PEs answer", func(m enrp.Message) bool { _, ok := m.(*enrp.HandleTableResponse); return ok }).(*enrp.HandleTableResponse)
	var table asap.Checksum
	for _, e := range resp.Pools {
		for _, x := range e.PEs {
			table.Add(e.PoolHandle, x.ID)
		}
	}
	if table.Value() != p.Checksum {
		t.Errorf("own-PEs table %+v has checksum 0x%04x, the PRESENCE 0x%04x", resp.Pools, table.Value(), p.Checksum)
	}
}
