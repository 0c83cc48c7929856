package registrar_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
	"github.com/rserpool-go/registrar/transport"
)

// startCluster runs n registrars in-process and waits until all are raft
// voters.
func startCluster(t *testing.T, n int, mod func(*registrar.Config)) []*testRegistrar {
	t.Helper()
	return registrartest.StartCluster(t, n, mod)
}

// raftServers is how many servers r's raft configuration has (0 when it
// cannot say).
func raftServers(r *testRegistrar) int {
	servers, err := r.Handlespace().Servers()
	if err != nil {
		return 0
	}
	return len(servers)
}

func leaderOf(nodes []*testRegistrar) *testRegistrar {
	for _, r := range nodes {
		if r.Handlespace().IsLeader() {
			return r
		}
	}
	return nil
}

func followerOf(nodes []*testRegistrar) *testRegistrar {
	for _, r := range nodes {
		if !r.Handlespace().IsLeader() {
			return r
		}
	}
	return nil
}

// asapPE is a test PE with its own ASAP endpoint: registrars that take it
// over dial it there. It answers every keep-alive and records them.
type asapPE struct {
	t     testing.TB
	ln    transport.Listener
	port  uint16
	mu    sync.Mutex
	homes map[uint32]int // keep-alives with H=1, by sender
	kas   int
	perPE map[uint32]int // keep-alives, by PE identifier
	conns int            // associations the registrars opened to it
}

func newASAPPE(t testing.TB) *asapPE {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	ln, err := transport.Listen(context.Background(), "tcp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return wrapPE(t, ln)
}

func wrapPE(t testing.TB, ln transport.Listener) *asapPE {
	ap, _ := netip.ParseAddrPort(ln.Addrs()[0].String())
	p := &asapPE{t: t, ln: ln, port: ap.Port(), homes: map[uint32]int{}, perPE: map[uint32]int{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns++
			p.mu.Unlock()
			go p.serve(c)
		}
	}()
	return p
}

func (p *asapPE) serve(c transport.Conn) {
	defer c.Close()
	for {
		_, b, err := c.Recv(context.Background())
		if err != nil {
			return
		}
		m, _, err := asap.Unpack(b, nil)
		if err != nil {
			continue
		}
		if ka, ok := m.(*asap.EndpointKeepAlive); ok {
			p.mu.Lock()
			p.kas++
			p.perPE[ka.ID]++
			if ka.Home {
				p.homes[ka.ServerID]++
			}
			p.mu.Unlock()
			ack, _ := asap.Pack(&asap.EndpointKeepAliveAck{PoolHandle: ka.PoolHandle, ID: ka.ID})
			c.Send(context.Background(), transport.PPIDASAP, ack)
		}
	}
}

func (p *asapPE) element(id uint32) asap.PoolElement {
	e := testPE(id, uint16(7000+id%1000), asap.Policy{Type: asap.PolicyRoundRobin})
	e.ASAP = asap.Transport{Kind: asap.ParamTCPTransport, Port: p.port, Addrs: []netip.Addr{loopback}}
	return e
}

// keepAlivesPerPE is how many keep-alives each PE got so far.
func (p *asapPE) keepAlivesPerPE() map[uint32]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[uint32]int{}
	for k, v := range p.perPE {
		out[k] = v
	}
	return out
}

// waitRounds waits until every PE in ids got n more keep-alives (and
// answered them) than in before: n supervision rounds each of which would
// have removed a PE whose answers did not count.
func (p *asapPE) waitRounds(t testing.TB, ids []uint32, before map[uint32]int, n int) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("%d more keep-alive rounds for PEs %v", n, ids), func() bool {
		now := p.keepAlivesPerPE()
		for _, id := range ids {
			if now[id] < before[id]+n {
				return false
			}
		}
		return true
	})
}

func (p *asapPE) homeKeepAlives() map[uint32]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[uint32]int{}
	for k, v := range p.homes {
		out[k] = v
	}
	return out
}

// Ensure writes at a follower are forwarded to the leader and visible at
// every registrar, and resolutions work everywhere.
func TestCluster3_ForwardAndReplicate(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	f := followerOf(nodes)
	cl := dial(t, f, true)
	for i := uint32(1); i <= 10; i++ {
		mustRegister(t, cl, "pool", testPE(i, uint16(7000+i), asap.Policy{Type: asap.PolicyRoundRobin}))
	}
	// Read your writes at the follower that answered, on the connection
	// that wrote (the follower answers once the leader applied a write,
	// and the connection's next request waits until it applied it too).
	if resp := resolve(t, cl, "pool", asap.ItemsAll); len(resp.PEs) != 10 {
		t.Fatalf("follower resolves %d PEs right after the answers, want 10", len(resp.PEs))
	}
	for _, r := range nodes {
		waitValue(t, 5*time.Second, "replication", func() int { _, n := r.Handlespace().Counts(); return n }, 10)
		if got := r.Handlespace().Owned(f.ID()); len(got) != 10 {
			t.Errorf("registrar %08x: %d PEs homed at the follower, want 10", r.ID(), len(got))
		}
	}
	// A deregistration right after the registration, on the same
	// connection, finds the PE (it waits for the follower's apply) and
	// removes it everywhere.
	mustRegister(t, cl, "pool", testPE(50, 7050, asap.Policy{Type: asap.PolicyRoundRobin}))
	if d, ok := cl.call(&asap.Deregistration{PoolHandle: "pool", ID: 50}).(*asap.DeregistrationResponse); !ok || d.Error != nil {
		t.Fatalf("deregistration at the follower: %+v", d)
	}
	for _, r := range nodes {
		waitValue(t, 5*time.Second, "the deregistered PE gone", func() int { _, n := r.Handlespace().Counts(); return n }, 10)
	}
	// A refusal made by the leader's FSM travels back with its cause.
	resp := register(t, cl, "pool", testPE(99, 7099, asap.Policy{Type: asap.PolicyLeastUsed}))
	if !resp.Reject || resp.Error.First() != asap.CauseInconsistentPolicy {
		t.Errorf("policy mismatch through a follower: %+v", resp)
	}
}

// Ensure that when a registrar dies, the leader gives its PEs new homes
// among the survivors, spread evenly, the new homes send H=1 keep-alives,
// and the PEs stay resolvable.
func TestCluster3_Takeover(t *testing.T) {
	nodes := startCluster(t, 3, func(c *registrar.Config) {
		c.KeepAliveInterval = registrar.Duration(200 * time.Millisecond)
		// The PEs answer every keep-alive: a timeout a busy machine
		// cannot overrun, so any removal is a real failure.
		c.KeepAliveTimeout = registrar.Duration(3 * time.Second)
	})
	victim := followerOf(nodes)
	pe := newASAPPE(t)
	cl := dial(t, victim, true)
	const n = 12
	for i := uint32(1); i <= n; i++ {
		mustRegister(t, cl, "pool", pe.element(i))
	}
	var survivors []*testRegistrar
	for _, r := range nodes {
		if r != victim {
			survivors = append(survivors, r)
		}
	}
	waitValue(t, 5*time.Second, "replication", func() int { _, c := survivors[0].Handlespace().Counts(); return c }, n)
	start := time.Now()
	victim.Crash()
	waitFor(t, 20*time.Second, "all PEs re-homed", func() bool {
		for _, r := range survivors {
			if len(r.Handlespace().Owned(victim.ID())) != 0 {
				return false
			}
		}
		return true
	})
	t.Logf("kill to last PE re-homed: %v", time.Since(start))
	for _, r := range survivors {
		got := len(r.Handlespace().Owned(r.ID()))
		if got != n/2 {
			t.Errorf("registrar %08x is home for %d PEs, want %d (even spread)", r.ID(), got, n/2)
		}
	}
	waitFor(t, 10*time.Second, "H=1 keep-alives from both new homes", func() bool {
		h := pe.homeKeepAlives()
		return h[survivors[0].ID()] > 0 && h[survivors[1].ID()] > 0
	})
	var ids []uint32
	for i := uint32(1); i <= n; i++ {
		ids = append(ids, i)
	}
	pe.waitRounds(t, ids, pe.keepAlivesPerPE(), 3) // nobody removes them
	for _, r := range survivors {
		if resp := resolve(t, dial(t, r, false), "pool", asap.ItemsAll); len(resp.PEs) != n {
			t.Errorf("registrar %08x resolves %d PEs after the takeover, want %d", r.ID(), len(resp.PEs), n)
		}
	}
}

// Ensure that losing quorum keeps resolutions working (marked stale) and
// refuses registrations after the bounded wait.
func TestCluster3_QuorumLoss(t *testing.T) {
	nodes := startCluster(t, 3, func(c *registrar.Config) { c.WriteTimeout = registrar.Duration(800 * time.Millisecond) })
	cl := dial(t, nodes[0], true)
	mustRegister(t, cl, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	for _, r := range nodes[1:] {
		waitValue(t, 5*time.Second, "replication", func() int { _, c := r.Handlespace().Counts(); return c }, 1)
	}
	survivor := nodes[2]
	nodes[0].Crash()
	nodes[1].Crash()
	pu := dial(t, survivor, false)
	if resp := resolve(t, pu, "pool", 1); len(resp.PEs) != 1 {
		t.Fatalf("resolution without quorum: %+v", resp)
	}
	pe := dial(t, survivor, true)
	t0 := time.Now()
	resp := register(t, pe, "pool", testPE(2, 7002, asap.Policy{Type: asap.PolicyRoundRobin}))
	if !resp.Reject || resp.Error.First() != asap.CauseLackOfResources {
		t.Fatalf("registration without quorum: %+v, want refused with lack of resources", resp)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("refusal took %v", d)
	}
	waitFor(t, 10*time.Second, "status stale", func() bool { return survivorStale(survivor) })
}

func survivorStale(r *testRegistrar) bool {
	return r.Handlespace().Status().LeaderAddr == ""
}

// Ensure a graceful leave removes the registrar from raft and its PEs get
// new homes at once.
func TestCluster3_Leave(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	leaver := followerOf(nodes)
	pe := newASAPPE(t)
	cl := dial(t, leaver, true)
	for i := uint32(1); i <= 4; i++ {
		mustRegister(t, cl, "pool", pe.element(i))
	}
	leaver.Leave()
	var rest []*testRegistrar
	for _, r := range nodes {
		if r != leaver {
			rest = append(rest, r)
		}
	}
	waitFor(t, 20*time.Second, "leaver removed from raft and its PEs re-homed", func() bool {
		return raftServers(rest[0]) == 2 && len(rest[0].Handlespace().Owned(leaver.ID())) == 0
	})
	if _, c := rest[0].Handlespace().Counts(); c != 4 {
		t.Errorf("after leave: %d PEs, want 4", c)
	}
}

// Ensure 5 registrars elect a new leader when the leader dies and keep
// accepting registrations; nothing acknowledged is lost.
func TestCluster5_LeaderFailover(t *testing.T) {
	nodes := startCluster(t, 5, nil)
	leader := leaderOf(nodes)
	var others []*testRegistrar
	for _, r := range nodes {
		if r != leader {
			others = append(others, r)
		}
	}
	cl := dial(t, others[0], true)
	acked := 0
	// Five registrars under -race on two busy cores may change leaders
	// on their own: a registration refused meanwhile is not acknowledged,
	// and is retried as a PE does.
	for i := uint32(1); i <= 20; i++ {
		registerAsPE(t, cl, "pool", testPE(i, uint16(7000+i), asap.Policy{Type: asap.PolicyRoundRobin}), 30*time.Second)
		acked++
	}
	t0 := time.Now()
	leader.Crash()
	waitFor(t, 20*time.Second, "a new leader", func() bool { return leaderOf(others) != nil })
	t.Logf("leader failover: %v", time.Since(t0))
	for i := uint32(21); i <= 40; i++ {
		registerAsPE(t, cl, "pool", testPE(i, uint16(7000+i), asap.Policy{Type: asap.PolicyRoundRobin}), 30*time.Second)
		acked++
	}
	for _, r := range others {
		waitFor(t, 10*time.Second, "every acknowledged PE at "+strconv.FormatUint(uint64(r.ID()), 16), func() bool {
			_, c := r.Handlespace().Counts()
			return c == acked
		})
	}
	if out := strings.TrimSpace(fmt.Sprint(acked)); out != "40" {
		t.Fatalf("acked %s", out)
	}
}

// Ensure that a PE whose removal could not be committed (no quorum) stays
// supervised, so that its removal is retried once the quorum is back:
// one that stopped answering keep-alives, one whose deregistration was
// refused.
func TestCluster3_RemovalRetriedAfterQuorumLoss(t *testing.T) {
	timers := func(c *registrar.Config) {
		c.WriteTimeout = registrar.Duration(800 * time.Millisecond)
		c.KeepAliveInterval = registrar.Duration(100 * time.Millisecond)
		c.KeepAliveTimeout = registrar.Duration(150 * time.Millisecond)
	}
	nodes := startCluster(t, 3, timers)
	survivor := nodes[2]
	silent, deregistering := dial(t, survivor, true), dial(t, survivor, true)
	mustRegister(t, silent, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	mustRegister(t, deregistering, "pool", testPE(2, 7002, asap.Policy{Type: asap.PolicyRoundRobin}))
	type addrs struct{ dir, raft, gossip string }
	var crashed []addrs
	for _, r := range nodes { // the survivor too: a follower answers once the leader applied a write
		waitValue(t, 5*time.Second, "replication", func() int { _, c := r.Handlespace().Counts(); return c }, 2)
	}
	for _, r := range nodes[:2] {
		crashed = append(crashed, addrs{r.Dir, string(r.Handlespace().RaftAddr()), r.Handlespace().GossipAddr()})
		r.Crash()
	}

	silent.c.Close()
	resp, ok := deregistering.call(&asap.Deregistration{PoolHandle: "pool", ID: 2}).(*asap.DeregistrationResponse)
	if !ok || resp.Error == nil {
		t.Fatalf("deregistration without quorum: %+v, want an error", resp)
	}
	deregistering.c.Close()
	waitFor(t, 20*time.Second, "removals of both PEs tried without quorum", func() bool {
		return metricValue(t, survivor, "rsp_pe_removal_failures_total") >= 2
	})
	if _, c := survivor.Handlespace().Counts(); c != 2 {
		t.Fatalf("%d PEs without quorum, want 2", c)
	}

	seed := survivor.Handlespace().GossipAddr()
	for _, a := range crashed {
		startRegistrar(t, a.dir, func(c *registrar.Config) {
			timers(c)
			c.Raft, c.Gossip, c.Join = a.raft, a.gossip, []string{seed}
		})
	}
	waitFor(t, 20*time.Second, "both PEs removed once the quorum is back", func() bool {
		_, c := survivor.Handlespace().Counts()
		return c == 0
	})
}

// Ensure DELETE /v1/raft/peers/{id} (registrar raft remove-peer) removes a
// dead registrar from raft when asked at a follower (proxied to the
// leader), refuses an unknown ID with 404 and a malformed one with 400.
func TestCluster3_RemovePeerAPI(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	dead := followerOf(nodes)
	dead.Crash()
	var asked *testRegistrar
	for _, r := range nodes {
		if r != dead && !r.Handlespace().IsLeader() {
			asked = r
		}
	}
	del := func(id string) (int, string) {
		req, _ := http.NewRequest(http.MethodDelete, "http://"+asked.HTTPAddr()+"/v1/raft/peers/"+id, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := del("zz"); code != http.StatusBadRequest || !strings.Contains(body, "want the registrar ID in hex") {
		t.Errorf("malformed ID: %d %s, want 400", code, body)
	}
	if code, body := del("0xfeedf00d"); code != http.StatusNotFound || !strings.Contains(body, "not in the configuration") {
		t.Errorf("unknown ID: %d %s, want 404", code, body)
	}
	id := fmt.Sprintf("0x%08x", dead.ID())
	// remove-peer is for a registrar gossip knows is gone: while gossip
	// still sees it alive, the leader adds it back as a voter.
	waitFor(t, 20*time.Second, "gossip at the asked registrar to see the dead one failed", func() bool {
		resp, err := http.Get("http://" + asked.HTTPAddr() + "/v1/members")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var ms []registrar.MemberInfo
		if json.NewDecoder(resp.Body).Decode(&ms) != nil {
			return false
		}
		for _, m := range ms {
			if m.ID == id {
				return m.Status == "failed"
			}
		}
		return false
	})
	if code, body := del(id); code != http.StatusOK || !strings.Contains(body, "removed") {
		t.Fatalf("remove the dead registrar: %d %s, want 200", code, body)
	}
	for _, r := range nodes {
		if r == dead {
			continue
		}
		waitFor(t, 10*time.Second, "2 raft servers", func() bool {
			return raftServers(r) == 2
		})
	}
	if code, _ := del(id); code != http.StatusNotFound {
		t.Errorf("removing it again: %d, want 404", code)
	}
}

// Ensure an admin request only the leader serves, made at a registrar
// that knows no leader (quorum lost), is held until a leader is elected
// instead of refused at once.
func TestCluster3_AdminRequestHeldUntilLeader(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	asked := nodes[2]
	type addrs struct{ dir, raft, gossip string }
	var crashed []addrs
	for _, r := range nodes[:2] {
		crashed = append(crashed, addrs{r.Dir, string(r.Handlespace().RaftAddr()), r.Handlespace().GossipAddr()})
		r.Crash()
	}
	waitFor(t, 20*time.Second, "the remaining registrar to know no leader", func() bool {
		return asked.Handlespace().Status().LeaderAddr == ""
	})
	type answer struct {
		code int
		body string
	}
	code := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + asked.HTTPAddr() + "/v1/snapshot")
		if err != nil {
			code <- answer{0, err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(b) > 300 {
			b = b[:300]
		}
		code <- answer{resp.StatusCode, string(b)}
	}()
	// The quorum comes back: one crashed registrar restarts.
	a := crashed[0]
	startRegistrar(t, a.dir, func(c *registrar.Config) {
		c.Raft, c.Gossip, c.Join = a.raft, a.gossip, []string{asked.Handlespace().GossipAddr()}
	})
	select {
	case got := <-code:
		if got.code != http.StatusOK {
			t.Errorf("snapshot save asked while no leader was known: HTTP %d (%s), want 200 once a leader is elected", got.code, got.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("snapshot save asked while no leader was known: no answer within 30s")
	}
}

// Ensure an admin request for the leader made at a follower just after
// the leader crashed is held and served by the new leader: the follower
// first forwards it to the crashed leader's admin API, which refuses the
// connection (the follower answered with a dropped connection, a nil
// answer dereferenced in the retry, before).
func TestCluster3_AdminRequestAtLeaderCrash(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	leader := leaderOf(nodes)
	var f *testRegistrar
	for _, r := range nodes {
		if r != leader {
			f = r
		}
	}
	leader.Crash()
	resp, err := http.Get("http://" + f.HTTPAddr() + "/v1/snapshot")
	if err != nil {
		t.Fatalf("snapshot save at a follower right after the leader crashed: %v, want it held until a new leader serves it", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("snapshot save at a follower right after the leader crashed: HTTP %d (%.300s), want 200 from the new leader", resp.StatusCode, b)
	}
}

// Ensure a registrar asked as the leader by another one (a proxied
// request) that is not the leader says so, so that the registrar that
// forwarded it asks the new leader instead of relaying a failure.
func TestCluster3_ProxiedToFollowerSaysNotLeader(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	f := followerOf(nodes)
	req, _ := http.NewRequest(http.MethodGet, "http://"+f.HTTPAddr()+"/v1/snapshot", nil)
	req.Header.Set("X-Registrar-Proxied", "0x00000001")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-Registrar-Not-Leader") == "" {
		t.Errorf("proxied request at a follower: HTTP %d, X-Registrar-Not-Leader %q; want 503 and the header", resp.StatusCode, resp.Header.Get("X-Registrar-Not-Leader"))
	}
	// The same request from a client is forwarded to the leader.
	resp, err = http.Get("http://" + f.HTTPAddr() + "/v1/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("snapshot save at a follower: HTTP %d, want 200 (forwarded to the leader)", resp.StatusCode)
	}
}
