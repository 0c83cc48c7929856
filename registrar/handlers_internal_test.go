package registrar

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/cluster/clustertest"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/transport"
)

// Unit tests of the daemon's handlers against an in-memory replicated
// handlespace (clustertest): the real handlespace, raft and FSM, without
// sockets, listeners or files.

const unitID = 0x11

// unitRegistrar is a registrar around an in-memory handlespace, with
// what the ASAP and ENRP handlers use (metrics, rate limits, PE
// supervision, ENRP peering's view of the handlespace) and no listeners;
// before, if given, changes it before supervision starts.
func unitRegistrar(t *testing.T, hsMod func(*cluster.Config), before ...func(*Registrar)) *Registrar {
	t.Helper()
	hs := clustertest.Open(t, unitID, hsMod)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	r := &Registrar{cfg: cfg, applied: cfg, log: sharedtest.Logger(t, "registrar"), id: unitID, hs: hs,
		net: transport.NewMemNetwork(), quit: make(chan struct{}), conns: map[*asapConn]struct{}{}}
	r.quitCtx, r.quitStop = context.WithCancel(context.Background())
	r.metrics = newMetrics(r)
	r.limits = newRateLimits(cfg)
	r.peers = newPeers(r)
	r.live = newLiveness(r)
	for _, f := range before {
		f(r)
	}
	r.live.start()
	r.peers.start(hs)
	t.Cleanup(func() { _ = r.stopGoroutines() }) // before the handlespace closes
	return r
}

// peConn is the registrar's end of an association with a PE at 10.0.0.1,
// and the PE's end.
func peConn(t *testing.T, r *Registrar) (*asapConn, transport.Conn) {
	t.Helper()
	pcfg := transport.DefaultConfig()
	pcfg.LocalAddrs = []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	ours, theirs, err := transport.NewPipe(transport.DefaultConfig(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	return r.newConn(ours), theirs
}

func unitPE(id uint32, policy asap.PolicyType) asap.PoolElement {
	return asap.PoolElement{ID: id, Lifetime: 30000,
		User:   asap.Transport{Kind: asap.ParamTCPTransport, Use: asap.UseData, Port: 7000, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		Policy: asap.Policy{Type: policy},
		ASAP:   asap.Transport{Kind: asap.ParamTCPTransport, Use: asap.UseData, Port: 7001, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}}
}

func waitUnit(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Ensure a registration is committed with this registrar as the PE's
// home and supervised; a re-registration that changes nothing writes
// nothing; a PE inconsistent with its pool is refused with the cause the
// handlespace decided.
func TestRegister_Handler(t *testing.T) {
	r := unitRegistrar(t, nil)
	ac, _ := peConn(t, r)
	ctx := context.Background()
	resp := r.register(ctx, ac, &asap.Registration{PoolHandle: "pool", PoolElement: unitPE(1, asap.PolicyRoundRobin)})
	if resp.Reject {
		t.Fatalf("registration refused: %v", resp.Error)
	}
	pe, ok := r.hs.Lookup("pool", 1)
	if !ok || pe.Element.Home != unitID {
		t.Fatalf("after the registration the handlespace has %+v (found %v), want the PE homed at 0x%08x", pe.Element, ok, unitID)
	}
	if n := r.live.count(); n != 1 {
		t.Errorf("%d PEs supervised, want 1", n)
	}
	index := r.hs.Status().LastIndex
	if resp := r.register(ctx, ac, &asap.Registration{PoolHandle: "pool", PoolElement: unitPE(1, asap.PolicyRoundRobin)}); resp.Reject {
		t.Fatalf("re-registration refused: %v", resp.Error)
	}
	if now := r.hs.Status().LastIndex; now != index {
		t.Errorf("a re-registration that changes nothing wrote to raft: last index %d, was %d", now, index)
	}
	resp = r.register(ctx, ac, &asap.Registration{PoolHandle: "pool", PoolElement: unitPE(2, asap.PolicyLeastUsed)})
	if !resp.Reject || resp.Error == nil || resp.Error.First() != asap.CauseInconsistentPolicy {
		t.Errorf("a PE with another policy than its pool's: reject %v, error %v; want refused with inconsistent pooling policy", resp.Reject, resp.Error)
	}
}

// Ensure a registration whose user addresses are not the PE's own is
// refused with Invalid Values before anything is written.
func TestRegister_ForeignAddresses(t *testing.T) {
	r := unitRegistrar(t, nil)
	ac, _ := peConn(t, r)
	pe := unitPE(1, asap.PolicyRoundRobin)
	pe.User.Addrs = []netip.Addr{netip.MustParseAddr("192.0.2.9")}
	resp := r.register(context.Background(), ac, &asap.Registration{PoolHandle: "pool", PoolElement: pe})
	if !resp.Reject || resp.Error.First() != asap.CauseInvalidValues {
		t.Errorf("reject %v, error %v; want refused with invalid values", resp.Reject, resp.Error)
	}
	if _, n := r.hs.Counts(); n != 0 {
		t.Errorf("the refused PE is in the handlespace (%d PEs)", n)
	}
}

// Ensure a registration that cannot commit (no raft leader) is refused
// with Lack of Resources, as RSPLIB's PEs expect, and nothing is
// supervised.
func TestRegister_NoQuorum(t *testing.T) {
	r := unitRegistrar(t, func(c *cluster.Config) {
		c.Bootstrap = false
		c.Raft.ApplyTimeout = 200 * time.Millisecond
	})
	ac, _ := peConn(t, r)
	resp := r.register(context.Background(), ac, &asap.Registration{PoolHandle: "pool", PoolElement: unitPE(1, asap.PolicyRoundRobin)})
	if !resp.Reject || resp.Error == nil || resp.Error.First() != asap.CauseLackOfResources {
		t.Errorf("reject %v, error %v; want refused with lack of resources", resp.Reject, resp.Error)
	}
	if n := r.live.count(); n != 0 {
		t.Errorf("%d PEs supervised after a refused registration", n)
	}
}

// Ensure a deregistration removes the PE and its supervision, and one of
// an unknown PE is answered without an error (as RSPLIB does).
func TestDeregister_Handler(t *testing.T) {
	r := unitRegistrar(t, nil)
	ac, _ := peConn(t, r)
	ctx := context.Background()
	if resp := r.register(ctx, ac, &asap.Registration{PoolHandle: "pool", PoolElement: unitPE(1, asap.PolicyRoundRobin)}); resp.Reject {
		t.Fatal(resp.Error)
	}
	if resp := r.deregister(ctx, ac, &asap.Deregistration{PoolHandle: "pool", ID: 1}); resp.Error != nil {
		t.Fatalf("deregistration: %v", resp.Error)
	}
	if _, ok := r.hs.Lookup("pool", 1); ok {
		t.Error("the PE is still in the handlespace")
	}
	if n := r.live.count(); n != 0 {
		t.Errorf("%d PEs supervised after the deregistration", n)
	}
	if resp := r.deregister(ctx, ac, &asap.Deregistration{PoolHandle: "pool", ID: 7}); resp.Error != nil {
		t.Errorf("deregistration of an unknown PE: %v, want success", resp.Error)
	}
}

// Ensure a resolution is answered from the local handlespace with the
// pool's PEs, and one of an unknown pool with Unknown Pool Handle.
func TestResolve_Handler(t *testing.T) {
	r := unitRegistrar(t, nil)
	ac, pe := peConn(t, r)
	for id := uint32(1); id <= 2; id++ {
		if err := r.hs.Register(context.Background(), "pool", func() asap.PoolElement {
			p := unitPE(id, asap.PolicyRoundRobin)
			p.Home = 0x99
			return p
		}()); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() *asap.HandleResolutionResponse {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, b, err := pe.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := asap.Unpack(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, ok := m.(*asap.HandleResolutionResponse)
		if !ok {
			t.Fatalf("got a %v, want a handle resolution response", m.Type())
		}
		return resp
	}
	r.resolve(ac, &asap.HandleResolution{PoolHandle: "pool"})
	if resp := recv(); resp.Error != nil || len(resp.PEs) != 2 || resp.PoolHandle != "pool" {
		t.Errorf("resolution of the pool: %d PEs, error %v; want both PEs", len(resp.PEs), resp.Error)
	}
	r.resolve(ac, &asap.HandleResolution{PoolHandle: "nopool"})
	if resp := recv(); resp.Error == nil || resp.Error.First() != asap.CauseUnknownPoolHandle {
		t.Errorf("resolution of an unknown pool: error %v, want unknown pool handle", resp.Error)
	}
}

// Ensure PE supervision follows the handlespace's committed changes: a
// takeover that makes this registrar home of another registrar's PEs is
// adopted, and a subscription that fell behind (changes dropped) is
// renewed and supervision resynchronised from the handlespace.
func TestLiveness_FollowsCommittedChanges(t *testing.T) {
	r := unitRegistrar(t, nil, func(r *Registrar) { r.live.buffer = 2 })
	ctx := context.Background()
	for id := uint32(1); id <= 3; id++ {
		p := unitPE(id, asap.PolicyRoundRobin)
		p.Home = 0x99
		if err := r.hs.Register(ctx, "pool", p); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.hs.Takeover(ctx, 0x99, []uint32{unitID}); err != nil {
		t.Fatal(err)
	}
	waitUnit(t, "the 3 PEs taken over supervised", func() bool { return r.live.count() == 3 })

	// Make the supervision loop miss changes: hold it while more
	// takeovers than its subscription holds are committed.
	old := r.live.sub
	r.live.mu.Lock()
	for i := uint32(0); i < 4; i++ {
		p := unitPE(100+i%4, asap.PolicyRoundRobin)
		p.Home = 0x98
		if err := r.hs.Register(ctx, "pool", p); err != nil {
			r.live.mu.Unlock()
			t.Fatal(err)
		}
		if err := r.hs.Takeover(ctx, 0x98, []uint32{unitID}); err != nil {
			r.live.mu.Unlock()
			t.Fatal(err)
		}
	}
	r.live.mu.Unlock()
	waitUnit(t, "the PEs of the missed takeovers supervised after the resync", func() bool { return r.live.count() == 7 })
	if err := old.Err(); !errors.Is(err, cluster.ErrSlowSubscriber) {
		t.Fatalf("the first subscription ended with %v, want ErrSlowSubscriber: the test did not make it fall behind", err)
	}
	p := unitPE(200, asap.PolicyRoundRobin)
	p.Home = 0x97
	if err := r.hs.Register(ctx, "pool", p); err != nil {
		t.Fatal(err)
	}
	if err := r.hs.Takeover(ctx, 0x97, []uint32{unitID}); err != nil {
		t.Fatal(err)
	}
	waitUnit(t, "a takeover after the resync adopted", func() bool { return r.live.count() == 8 })
}

// Ensure the handle table answer (ENRP_HANDLE_TABLE_RESPONSE) pages
// through the handlespace: at most 128 PEs a page, More until the last,
// every PE of ours exactly once with W=1.
func TestENRPTable_Pages(t *testing.T) {
	r := unitRegistrar(t, nil)
	ctx := context.Background()
	const n = 300
	for id := uint32(1); id <= n; id++ {
		p := unitPE(id, asap.PolicyRoundRobin)
		p.Home = unitID
		if id%10 == 0 {
			p.Home = 0x99 // not ours: left out with W=1
		}
		if err := r.hs.Register(ctx, "pool", p); err != nil {
			t.Fatal(err)
		}
	}
	ec := &enrpConn{r: r, next: map[tableKey]cluster.Cursor{}}
	seen := map[uint32]int{}
	for page := 0; ; page++ {
		resp := ec.table(enrp.Header{Sender: unitID, Receiver: 0x42}, true)
		count := 0
		for _, pool := range resp.Pools {
			for _, pe := range pool.PEs {
				count++
				seen[pe.ID]++
				if pe.Home != unitID {
					t.Errorf("page %d: PE 0x%08x homed at 0x%08x with W=1", page, pe.ID, pe.Home)
				}
			}
		}
		if count > maxPEsPerTableResponse {
			t.Errorf("page %d holds %d PEs, at most %d", page, count, maxPEsPerTableResponse)
		}
		if !resp.More {
			break
		}
		if page > n {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != n-n/10 {
		t.Errorf("the pages held %d distinct PEs, want the %d of ours", len(seen), n-n/10)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("PE 0x%08x came %d times", id, c)
		}
	}
}

// connPEs is the keys of the PEs supervision reaches through ac (its
// livePEs list), checking the list's back links on the way.
func connPEs(t *testing.T, l *liveness, ac *asapConn) map[uint32]bool {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := map[uint32]bool{}
	var prev *peState
	for p := ac.livePEs; p != nil; p = p.connNext {
		if p.connPrev != prev || p.conn != ac {
			t.Fatalf("PE %d in the list of a connection: back link or connection wrong", p.key.id)
		}
		if l.pes[p.key] != p {
			t.Fatalf("PE %d in a connection's list is not supervised", p.key.id)
		}
		ids[p.key.id] = true
		prev = p
	}
	return ids
}

// Ensure the end of a connection reaches exactly the PEs supervised
// through it: not those that moved to another connection since, not
// those deregistered, not other connections' (a closed connection used
// to scan every supervised PE: O(all PEs) for each connection that
// ended, 19 000 x 19 000 steps when 19 000 PEs' connections end at once).
func TestConnClosed_VisitsOnlyItsPEs(t *testing.T) {
	r := unitRegistrar(t, nil)
	a, _ := peConn(t, r)
	b, _ := peConn(t, r)
	ctx := context.Background()
	reg := func(ac *asapConn, id uint32) {
		t.Helper()
		if resp := r.register(ctx, ac, &asap.Registration{PoolHandle: "pool", PoolElement: unitPE(id, asap.PolicyRoundRobin)}); resp.Reject {
			t.Fatalf("registration of PE %d: %v", id, resp.Error)
		}
	}
	for id := uint32(1); id <= 4; id++ {
		reg(a, id)
	}
	for id := uint32(10); id <= 12; id++ {
		reg(b, id)
	}
	reg(b, 2) // PE 2 moves to b
	if resp := r.deregister(ctx, a, &asap.Deregistration{PoolHandle: "pool", ID: 3}); resp.Error != nil {
		t.Fatal(resp.Error)
	}
	if got, want := connPEs(t, r.live, a), map[uint32]bool{1: true, 4: true}; !maps.Equal(got, want) {
		t.Fatalf("connection a reaches PEs %v, want %v", got, want)
	}
	if got, want := connPEs(t, r.live, b), map[uint32]bool{2: true, 10: true, 11: true, 12: true}; !maps.Equal(got, want) {
		t.Fatalf("connection b reaches PEs %v, want %v", got, want)
	}

	before := time.Now()
	r.live.connClosed(a)
	r.live.mu.Lock()
	for id, want := range map[uint32]*asapConn{1: nil, 4: nil, 2: b, 10: b, 11: b, 12: b} {
		p := r.live.pes[peKey{"pool", id}]
		if p == nil {
			t.Errorf("PE %d not supervised after connection a ended", id)
			continue
		}
		if p.conn != want {
			t.Errorf("PE %d: connection %p after a ended, want %p", id, p.conn, want)
		}
		if want == nil && p.nextKA.After(time.Now()) {
			t.Errorf("PE %d lost its connection but its keep-alive is not due at once (next %v, closed at %v)", id, p.nextKA, before)
		}
	}
	r.live.mu.Unlock()
	if got := connPEs(t, r.live, a); len(got) != 0 {
		t.Errorf("the ended connection still reaches PEs %v", got)
	}
	if got := connPEs(t, r.live, b); len(got) != 4 {
		t.Errorf("connection b reaches PEs %v after a ended, want its 4", got)
	}
	r.live.forget("pool", 10)
	if got, want := connPEs(t, r.live, b), map[uint32]bool{2: true, 11: true, 12: true}; !maps.Equal(got, want) {
		t.Errorf("after PE 10's supervision ended connection b reaches %v, want %v", got, want)
	}
}

// Ensure supervision does not take a PE's absence from the local
// handlespace for its removal while the PE's registration is committed
// but not applied here (a follower answers before it applies): the
// keep-alive goes out and the PE stays supervised; once the applied
// index passes the registration's and the PE is still absent, it is
// forgotten as before.
func TestLiveness_UnappliedRegistrationKeepsSupervision(t *testing.T) {
	r := unitRegistrar(t, nil)
	ac, theirs := peConn(t, r)
	pe := unitPE(7, asap.PolicyRoundRobin) // never written to the handlespace
	key := peKey{"pool", pe.ID}
	snapshot := func() *peState {
		r.live.mu.Lock()
		defer r.live.mu.Unlock()
		p := r.live.pes[key]
		if p == nil {
			return nil
		}
		cp := *p
		cp.connPrev, cp.connNext = nil, nil
		return &cp
	}

	r.live.track(ac, "pool", pe, time.Now(), r.hs.LastApplied()+1000)
	r.live.keepAlive(snapshot())
	if snapshot() == nil {
		t.Fatal("a PE whose registration is not applied here yet was forgotten at its keep-alive")
	}
	_, msg, err := theirs.Recv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ka, _, err := asap.Unpack(msg, nil); err != nil || ka.Type() != asap.TypeEndpointKeepAlive {
		t.Fatalf("the PE got %v (%v), want a keep-alive", ka, err)
	}
	r.live.resync(false)
	if snapshot() == nil {
		t.Fatal("resync dropped a PE whose registration is not applied here yet")
	}

	r.live.track(ac, "pool", pe, time.Now(), 0) // applied (or at the leader), yet absent: gone
	r.live.keepAlive(snapshot())
	if snapshot() != nil {
		t.Fatal("a PE absent from the applied handlespace is still supervised")
	}
}
