package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rserpool-go/registrar/enrp"
)

// roles builds a configuration as servers reports it: the voters and the
// non-voters by registrar ID.
func roles(voterIDs []uint32, nonvoterIDs ...uint32) []string {
	out := voters(voterIDs...)
	for _, id := range nonvoterIDs {
		out = append(out, string(ServerID(id))+":"+raft.Nonvoter.String())
	}
	slices.Sort(out)
	return out
}

// waitServers waits until the leader's configuration is exactly want.
func (c *inmemCluster) waitServers(d time.Duration, what string, want []string) {
	c.t.Helper()
	c.waitFor(d, what, func() (bool, string) {
		l := c.leader()
		got := servers(l)
		return slices.Equal(got, want), fmt.Sprintf("servers %v at leader %08x, want %v", got, l.id, want)
	})
}

// register commits a PE homed at n through n (forwarded unless n leads).
func register(t *testing.T, n *inmemNode, id uint32) {
	t.Helper()
	res, err := n.node.Propose(context.Background(), NewUpdate(time.Now(), enrp.AddPE, n.id, "pool", pe(id, n.id)))
	if err == nil {
		err = res.Failed()
	}
	if err != nil {
		t.Fatalf("registration of PE %d at %08x: %v", id, n.id, err)
	}
}

// Ensure a cluster keeps three voters: registrars 4 and 5 join as
// non-voters that replicate and take writes (forwarded, read at once
// where they were made); when a voter crashes, the leader promotes a
// healthy non-voter, demotes the dead voter and re-homes its PEs, so the
// cluster is back to three alive voters.
func TestInmemCluster_NonVoterReplacesFailedVoter(t *testing.T) {
	c := startInmemCluster3(t)
	n4, n5 := c.start(4), c.start(5)
	c.waitServers(30*time.Second, "registrars 4 and 5 as non-voters", roles([]uint32{1, 2, 3}, 4, 5))

	register(t, n4, 1)
	if _, ok := n4.st.Lookup("pool", 1); !ok {
		t.Fatal("a non-voter answered a forwarded write before it applied it")
	}
	register(t, c.leader(), 2)
	c.waitFor(10*time.Second, "the leader's write replicated to the non-voter", func() (bool, string) {
		_, ok := n5.st.Lookup("pool", 2)
		_, pes := n5.st.Counts()
		return ok, fmt.Sprintf("non-voter 5 holds %d PEs", pes)
	})

	l := c.leader()
	victim := c.followers(l)[0]
	if victim.id > 3 {
		victim = c.followers(l)[1]
	}
	for i := uint32(10); i < 14; i++ {
		register(t, victim, i)
	}
	c.stop(victim)

	c.waitFor(30*time.Second, "a non-voter promoted, the dead voter demoted", func() (bool, string) {
		l := c.leader()
		got := servers(l)
		nv, v := 0, 0
		for _, s := range got {
			switch s {
			case string(ServerID(victim.id)) + ":" + raft.Nonvoter.String():
				nv++
			case string(ServerID(4)) + ":Voter", string(ServerID(5)) + ":Voter":
				v++
			}
		}
		return nv == 1 && v == 1 && len(got) == 5, fmt.Sprintf("servers %v at leader %08x", got, l.id)
	})
	c.waitFor(30*time.Second, "the dead voter's PEs re-homed", func() (bool, string) {
		n := len(c.leader().st.Owned(victim.id))
		return n == 0, fmt.Sprintf("%08x still owns %d PEs", victim.id, n)
	})
	// Every voter left is alive: a write commits.
	register(t, n5, 3)
}

// Ensure leave works the same for both roles: a non-voter that leaves is
// removed from raft; a voter that leaves is removed and a non-voter
// takes its place.
func TestInmemCluster_LeaveOfBothRoles(t *testing.T) {
	c := startInmemCluster3(t)
	c.start(4)
	n5 := c.start(5)
	c.waitServers(30*time.Second, "registrars 4 and 5 as non-voters", roles([]uint32{1, 2, 3}, 4, 5))

	if err := n5.ml.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.waitServers(30*time.Second, "the non-voter that left removed", roles([]uint32{1, 2, 3}, 4))
	c.stop(n5)

	l := c.leader()
	var leaving *inmemNode
	for _, f := range c.followers(l) {
		if f.id <= 3 {
			leaving = f
			break
		}
	}
	// leaving's raft goes on after it left gossip; slow timers keep it
	// from campaigning when a busy machine delays a heartbeat.
	rc := leaving.node.Raft().ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = 20*time.Second, 20*time.Second
	if err := leaving.node.Raft().ReloadConfig(rc); err != nil {
		t.Fatal(err)
	}
	if err := leaving.ml.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	rest := slices.DeleteFunc([]uint32{1, 2, 3, 4}, func(id uint32) bool { return id == leaving.id })
	c.waitServers(30*time.Second, "the voter that left removed and the non-voter promoted", roles(rest))
}
