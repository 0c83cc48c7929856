package registrar_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// roles is what `registrar raft peers -json` at a says: the registrar IDs
// by role ("voter", "non-voter"), sorted, and whether a leader is known.
func (c *e2eCluster) roles(a *registrartest.Agent) (map[string][]string, bool) {
	out := map[string][]string{}
	leader := false
	for _, p := range c.peers(a) {
		out[p.Role] = append(out[p.Role], p.ID)
		leader = leader || p.Leader
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out, leader
}

// Ensure, with the built binaries, that registrars beyond -voters 3 join
// as non-voters (shown by `raft peers` and `members`), take
// registrations and answer resolutions, and that after a kill -9 of a
// voter a non-voter is promoted, the cluster is back to three alive
// voters and the dead one's PEs are re-homed; the killed registrar comes
// back as a non-voter.
func TestE2E_NonVoters(t *testing.T) {
	c := startE2ECluster(t, "-voters", "3")
	base := t.TempDir()
	for i := 4; i <= 5; i++ {
		a := registrartest.StartAgent(t, filepath.Join(base, fmt.Sprintf("r%d", i)), "-join", c.agents[0].Gossip, "-voters", "3")
		c.agents = append(c.agents, a)
	}
	ids := map[*registrartest.Agent]string{}
	for _, a := range c.agents {
		ids[a] = c.status(a).ID
	}
	nonvoters := []string{ids[c.agents[3]], ids[c.agents[4]]}
	slices.Sort(nonvoters)
	var saw map[string][]string
	waitFor(t, 30*time.Second, "registrars 4 and 5 as non-voters", func() bool {
		r, leader := c.roles(c.agents[0])
		saw = r
		return leader && len(r["voter"]) == 3 && slices.Equal(r["non-voter"], nonvoters)
	})
	out, err := c.agents[4].CLI("members")
	if err != nil {
		t.Fatalf("registrar members: %v\n%s", err, out)
	}
	if n := strings.Count(out, "non-voter"); n != 2 {
		t.Errorf("registrar members shows %d non-voters, want 2:\n%s", n, out)
	}
	out, err = c.agents[0].CLI("raft", "peers")
	if err != nil || strings.Count(out, "non-voter") != 2 || !strings.Contains(out, "ROLE") {
		t.Errorf("registrar raft peers (err %v) does not show two non-voters:\n%s", err, out)
	}

	// A non-voter takes registrations and serves resolutions.
	pe := newASAPPE(t)
	const per = 4
	for i, a := range c.agents {
		cl := dialAddr(t, a.ASAP, true)
		for j := 0; j < per; j++ {
			mustRegister(t, cl, "pool", pe.element(uint32(100*(i+1)+j)))
		}
	}
	resolveAll := func(a *registrartest.Agent) int {
		return len(resolve(t, dialAddr(t, a.ASAP, false), "pool", asap.ItemsAll).PEs)
	}
	for _, a := range c.agents {
		waitValue(t, 10*time.Second, "replication to "+a.HTTP, func() int { return resolveAll(a) }, 5*per)
	}

	// kill -9 a voter that does not lead.
	l := c.leader()
	var victim *registrartest.Agent
	for _, a := range c.agents[:3] {
		if a != l {
			victim = a
			break
		}
	}
	victimID := ids[victim]
	start := time.Now()
	victim.Kill()
	waitFor(t, 60*time.Second, "three alive voters, one of them a former non-voter", func() bool {
		r, leader := c.roles(l)
		saw = r
		promoted := slices.ContainsFunc(r["voter"], func(id string) bool { return slices.Contains(nonvoters, id) })
		return leader && len(r["voter"]) == 3 && !slices.Contains(r["voter"], victimID) && promoted
	})
	t.Logf("kill -9 of a voter to three voters again: %v (roles %v)", time.Since(start), saw)
	waitFor(t, 30*time.Second, "the killed voter's PEs re-homed", func() bool {
		out, err := l.CLI("pools", "-json", "pool")
		if err != nil {
			return false
		}
		var d registrar.PoolDetail
		if json.Unmarshal([]byte(out), &d) != nil || len(d.PEs) != 5*per {
			return false
		}
		return !slices.ContainsFunc(d.PEs, func(p registrar.PEInfo) bool { return p.Home == victimID })
	})
	t.Logf("kill -9 of a voter to its PEs re-homed: %v", time.Since(start))

	// It comes back as a non-voter and catches up.
	victim.RestartAndWait()
	waitFor(t, 30*time.Second, "the restarted registrar a non-voter", func() bool {
		r, _ := c.roles(l)
		saw = r
		return len(r["voter"]) == 3 && slices.Contains(r["non-voter"], victimID)
	})
	waitValue(t, 20*time.Second, "the restarted registrar caught up", func() int { return resolveAll(victim) }, 5*per)
}

// Ensure a number of voters outside 1 to 7 is refused naming the key
// (once, not again as a gossip problem).
func TestConfig_Voters(t *testing.T) {
	for _, n := range []int{0, -1, 8} {
		c := registrar.DefaultConfig()
		c.Voters = n
		err := c.Validate()
		if err == nil || strings.Count(err.Error(), "voters") != 1 {
			t.Errorf("Validate with voters %d: %v; want one problem with voters", n, err)
		}
	}
	for _, n := range []int{1, 3, 7} {
		c := registrar.DefaultConfig()
		c.Voters = n
		if err := c.Validate(); err != nil {
			t.Errorf("Validate with voters %d: %v", n, err)
		}
	}
}
