package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/store"
)

// inmemNode is one registrar of an in-process cluster: a store, a raft
// node and gossip, over an InmemNetwork (no files, no sockets).
type inmemNode struct {
	id    uint32
	st    *store.Store
	node  *Node
	ml    *Membership
	alive bool
}

// inmemCluster runs registrars in one process (raft's InmemTransport,
// memberlist's MockNetwork), with the local (fast) timers.
type inmemCluster struct {
	t     *testing.T
	net   *InmemNetwork
	nodes []*inmemNode
}

func newInmemCluster(t *testing.T) *inmemCluster {
	c := &inmemCluster{t: t, net: NewInmemNetwork()}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.stop(n)
		}
		c.net.Close() // after every node: it waits for their connections
	})
	return c
}

// startInmemCluster3 starts registrars 1, 2 and 3 and waits until all
// three are voters.
func startInmemCluster3(t *testing.T) *inmemCluster {
	c := newInmemCluster(t)
	for _, id := range []uint32{1, 2, 3} {
		c.start(id)
	}
	c.waitVoters("the three registrars as voters", 1, 2, 3)
	return c
}

// start opens registrar id; the first one bootstraps, the others join its
// gossip. TakeoverGrace is long: unknown owners are not in these tests.
func (c *inmemCluster) start(id uint32) *inmemNode {
	c.t.Helper()
	st := store.OpenMemory(nil)
	log := sharedtest.Logger(c.t, fmt.Sprintf("registrar-%d", id))
	node, err := OpenNode(NodeConfig{ID: id, Raft: DefaultRaftConfig(ProfileLocal), Bootstrap: len(c.nodes) == 0, Inmem: c.net,
		Logger: log}, st)
	if err != nil {
		c.t.Fatal(err)
	}
	mc := DefaultMembershipConfig(ProfileLocal)
	mc.TakeoverGrace = time.Hour
	mc.Logger = log.Named("gossip")
	if len(c.nodes) > 0 {
		mc.Join = []string{c.nodes[0].ml.LocalAddr()}
	}
	ml, err := StartMembership(mc, node, Meta{})
	if err != nil {
		c.t.Fatal(err)
	}
	n := &inmemNode{id: id, st: st, node: node, ml: ml, alive: true}
	c.nodes = append(c.nodes, n)
	return n
}

// stop shuts a registrar down as a crash does: gossip and raft stop
// without a leave.
func (c *inmemCluster) stop(n *inmemNode) {
	if !n.alive {
		return
	}
	n.alive = false
	if err := n.ml.Shutdown(); err != nil {
		c.t.Errorf("gossip shutdown of %08x: %v", n.id, err)
	}
	if err := n.node.Shutdown(); err != nil {
		c.t.Errorf("raft shutdown of %08x: %v", n.id, err)
	}
	n.st.Close()
}

// waitFor polls cond until it holds, failing with what it waited for and
// what it last saw.
func (c *inmemCluster) waitFor(d time.Duration, what string, cond func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s; saw %s", d, what, saw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leader waits for one live node to lead.
func (c *inmemCluster) leader() *inmemNode {
	c.t.Helper()
	var l *inmemNode
	c.waitFor(20*time.Second, "a leader", func() (bool, string) {
		for _, n := range c.nodes {
			if n.alive && n.node.IsLeader() {
				l = n
				return true, ""
			}
		}
		return false, "no live node leads"
	})
	return l
}

// followers are the live nodes but l.
func (c *inmemCluster) followers(l *inmemNode) []*inmemNode {
	var out []*inmemNode
	for _, n := range c.nodes {
		if n.alive && n != l {
			out = append(out, n)
		}
	}
	return out
}

// servers is raft's configuration as node n sees it, as "id:suffrage".
func servers(n *inmemNode) []string {
	f := n.node.Raft().GetConfiguration()
	if f.Error() != nil {
		return []string{f.Error().Error()}
	}
	var out []string
	for _, s := range f.Configuration().Servers {
		out = append(out, string(s.ID)+":"+s.Suffrage.String())
	}
	slices.Sort(out)
	return out
}

func voters(ids ...uint32) []string {
	var out []string
	for _, id := range ids {
		out = append(out, string(ServerID(id))+":Voter")
	}
	slices.Sort(out)
	return out
}

// waitVoters waits until the leader's configuration is exactly ids.
func (c *inmemCluster) waitVoters(what string, ids ...uint32) {
	c.t.Helper()
	want := voters(ids...)
	c.waitFor(30*time.Second, what, func() (bool, string) {
		l := c.leader()
		got := servers(l)
		return slices.Equal(got, want), fmt.Sprintf("servers %v at leader %08x, want %v", got, l.id, want)
	})
}

// status is what node n's gossip says of registrar id.
func status(n *inmemNode, id uint32) MemberStatus {
	for _, m := range n.ml.Members() {
		if m.Meta.ID == id {
			return m.Status
		}
	}
	return 0
}

// Ensure an in-process cluster forms over the in-memory network: the
// leader's reconcile makes the registrars that gossip finds voters, and
// takes over the PEs of one that fails, spreading them over the others.
func TestInmemCluster_ReconcileAddsVotersAndTakesOver(t *testing.T) {
	c := startInmemCluster3(t)

	l := c.leader()
	victim := c.followers(l)[0]
	var pes []asap.PoolElement
	for i := uint32(1); i <= 6; i++ {
		pes = append(pes, pe(i, victim.id))
	}
	for _, p := range pes {
		res, err := victim.node.Propose(context.Background(), NewUpdate(time.Now(), enrp.AddPE, victim.id, "pool", p))
		if err == nil {
			err = res.Failed()
		}
		if err != nil {
			t.Fatalf("registration of PE %d: %v", p.ID, err)
		}
	}
	type nodeSub struct {
		id  uint32
		sub *Subscription
	}
	var subs []nodeSub
	for _, n := range c.followers(victim) {
		subs = append(subs, nodeSub{n.id, n.node.Subscribe(64, nil)})
	}
	c.stop(victim)

	c.waitFor(30*time.Second, "the failed registrar's PEs re-homed at the leader", func() (bool, string) {
		l := c.leader()
		return len(l.st.Owned(victim.id)) == 0, fmt.Sprintf("%08x still owns %d PEs at %08x (gossip: %v)",
			victim.id, len(l.st.Owned(victim.id)), l.id, status(l, victim.id))
	})
	l = c.leader()
	var homes []int
	for _, n := range c.followers(nil) {
		homes = append(homes, len(l.st.Owned(n.id)))
	}
	if !slices.Equal(homes, []int{3, 3}) {
		t.Errorf("PEs per surviving registrar %v, want 3 and 3", homes)
	}
	if got := servers(l); !slices.Equal(got, voters(1, 2, 3)) {
		t.Errorf("servers after a failure %v, want all three (a failed registrar stays a voter)", got)
	}
	// Every surviving registrar's subscribers saw the failure and the
	// takeover, with the PEs it moved and their new homes. At the leader,
	// which decided the takeover on its own gossip's word, the failure
	// comes first; another registrar's gossip may notice the failure
	// after the takeover committed.
	decided := l.id
	for _, ns := range subs {
		sub := ns.sub
		var failed bool
		var last uint64
		for moved := 0; moved == 0 || !failed; {
			var ch Change
			select {
			case ch = <-sub.C():
			case <-time.After(10 * time.Second):
				t.Fatalf("registrar %08x: no member failure and takeover delivered within 10 s (saw the failure: %v, PEs moved: %d; subscription %v)",
					ns.id, failed, moved, sub.Err())
			}
			if ch.Index < last {
				t.Errorf("a %v change carries index %d after %d", ch.Kind, ch.Index, last)
			}
			last = ch.Index
			switch {
			case ch.Kind == ChangeMember && ch.Member.Meta.ID == victim.id:
				failed = failed || ch.Member.Status == StatusFailed
			case ch.Kind == ChangeCommand && ch.Command.Kind == KindTakeover && moved == 0:
				if !failed && ns.id == decided {
					t.Errorf("the leader %08x delivered the takeover before the member failure it was decided on", ns.id)
				}
				for _, p := range ch.Results[0].PEs {
					if p.Element.Home == victim.id || p.Handle != "pool" {
						t.Errorf("the takeover reports %s/%d at home %08x", p.Handle, p.Element.ID, p.Element.Home)
					}
				}
				if moved = len(ch.Results[0].PEs); moved != 6 {
					t.Errorf("the takeover reports %d PEs moved, want 6", moved)
				}
			}
		}
		sub.Close()
	}
}

// Ensure the leader removes a registrar that left only while that keeps a
// quorum of alive voters: with one voter failed, the one that left stays;
// once a new registrar has joined, it is removed.
func TestInmemCluster_RemovalNeverBelowQuorum(t *testing.T) {
	c := startInmemCluster3(t)
	l := c.leader()
	fs := c.followers(l)
	failed, leaving := fs[0], fs[1]
	// leaving's raft goes on after it left gossip: give it timers slow
	// enough that it does not campaign (it would never remove itself) when
	// a busy machine delays a heartbeat.
	rc := leaving.node.Raft().ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = 20*time.Second, 20*time.Second
	if err := leaving.node.Raft().ReloadConfig(rc); err != nil {
		t.Fatal(err)
	}
	c.stop(failed)
	c.waitFor(30*time.Second, "gossip at the leader to see the crashed registrar failed", func() (bool, string) {
		st := status(l, failed.id)
		return st == StatusFailed, "status " + st.String()
	})
	// leaving leaves gossip on purpose, but its raft goes on: the leader
	// keeps its quorum (itself and leaving's raft), so it reconciles.
	if err := leaving.ml.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.waitFor(30*time.Second, "gossip at the leader to see the registrar leave", func() (bool, string) {
		st := status(l, leaving.id)
		return st == StatusLeft, "status " + st.String()
	})
	rounds := func() (n int64) {
		for _, x := range c.followers(nil) {
			n += x.ml.reconciled.Load()
		}
		return n
	}
	before := rounds()
	c.waitFor(30*time.Second, "five reconcile rounds by a leader after the leave", func() (bool, string) {
		n := rounds() - before
		return n >= 5, fmt.Sprintf("%d rounds", n)
	})
	if got, want := servers(c.leader()), voters(1, 2, 3); !slices.Equal(got, want) {
		t.Fatalf("servers %v after the leave with a voter failed, want %v: removing it would leave 1 of 2 voters alive", got, want)
	}

	c.start(4)
	c.waitVoters("the new registrar added and the one that left removed", append(slices.DeleteFunc([]uint32{1, 2, 3}, func(id uint32) bool { return id == leaving.id }), 4)...)
}

// Ensure writes at a follower are forwarded to the leader and answered
// once the follower applied them (it reads its own write at once), and
// that a refusal reaches the follower with the Operation Error the
// leader's store decided, as store.Check gives it.
func TestInmemCluster_ForwardsWrites(t *testing.T) {
	c := startInmemCluster3(t)
	l := c.leader()
	f := c.followers(l)[0]

	res, err := f.node.Propose(context.Background(), NewUpdate(time.Now(), enrp.AddPE, f.id, "pool", pe(1, f.id)))
	if err == nil {
		err = res.Failed()
	}
	if err != nil {
		t.Fatalf("forwarded registration: %v", err)
	}
	if _, ok := f.st.Lookup("pool", 1); !ok {
		t.Fatal("the follower answered a forwarded write before it applied it")
	}
	if _, ok := l.st.Lookup("pool", 1); !ok {
		t.Fatal("the forwarded write is not at the leader")
	}

	bad := pe(2, f.id)
	bad.Policy = asap.Policy{Type: asap.PolicyLeastUsed, Load: 1}
	var want *asap.OperationError
	if err := l.st.Check(store.PE{Handle: "pool", Element: bad}); !errors.As(err, &want) {
		t.Fatalf("Check of an inconsistent PE at the leader: %v, want an Operation Error", err)
	}
	res, err = f.node.Propose(context.Background(), NewUpdate(time.Now(), enrp.AddPE, f.id, "pool", bad))
	if err != nil {
		t.Fatalf("forwarded refused registration: %v, want a committed entry with a refusal", err)
	}
	var got *asap.OperationError
	if ferr := res.Failed(); !errors.Is(ferr, store.ErrPolicyMismatch) || !errors.As(ferr, &got) || !reflect.DeepEqual(got, want) {
		t.Fatalf("refusal through a follower: %v (Operation Error %+v), want ErrPolicyMismatch with %+v", ferr, got, want)
	}

	// A follower whose leader is gone and which has no quorum waits for a
	// leader and then gives up (ErrNoLeader), bounded by ctx.
	for _, n := range c.followers(f) {
		c.stop(n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := f.node.Propose(ctx, NewUpdate(time.Now(), enrp.AddPE, f.id, "pool", pe(3, f.id))); err == nil {
		t.Fatal("a write without quorum succeeded")
	} else if !errors.Is(err, ErrNoLeader) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, raft.ErrNotLeader) {
		t.Errorf("write without quorum: %v, want no leader or the deadline", err)
	}
}

// Ensure gossip events that memberlist delivers after Shutdown (from
// connections it was still serving) do not write peers.json: the data dir
// may be removed by then (a test's TempDir cleanup failed on it).
func TestMembership_NoPeersFileAfterShutdown(t *testing.T) {
	c := newInmemCluster(t)
	n := c.start(1)
	dir := t.TempDir()
	n.ml.cfg.DataDir = dir
	c.stop(n)
	ev := (*mlEvents)(n.ml)
	ev.NotifyJoin(&memberlist.Node{Name: "registrar-00000002", Addr: net.IPv4(127, 0, 0, 2), Port: 7946,
		Meta: []byte(`{"v":1,"id":2,"raft":"127.0.0.2:7947","rpc":"127.0.0.2:7947"}`)})
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("after Shutdown a gossip event wrote into the data dir: %v, %v", entries, err)
	}
}
