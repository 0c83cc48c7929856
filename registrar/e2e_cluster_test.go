package registrar_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// e2eCluster is three `registrar agent` processes joined by seeds.
type e2eCluster struct {
	t      *testing.T
	agents []*registrartest.Agent
	dirs   []string
}

func startE2ECluster(t *testing.T, extra ...string) *e2eCluster {
	t.Helper()
	registrartest.BinDir(t)
	base := t.TempDir()
	c := &e2eCluster{t: t}
	// Choose every gossip port first so each agent can name the others.
	gossip := make([]string, 3)
	for i := range gossip {
		gossip[i] = fmt.Sprintf("127.0.0.1:%d", registrartest.FreePort(t))
	}
	type res struct {
		i int
		a *registrartest.Agent
	}
	done := make(chan res, 3)
	for i := 0; i < 3; i++ {
		dir := filepath.Join(base, fmt.Sprintf("r%d", i+1))
		c.dirs = append(c.dirs, dir)
		args := append([]string{"-gossip", gossip[i], "-join", strings.Join(gossip, ","), "-bootstrap-expect", "3"}, extra...)
		go func(i int) { done <- res{i, registrartest.StartAgent(t, dir, args...)} }(i)
	}
	c.agents = make([]*registrartest.Agent, 3)
	for i := 0; i < 3; i++ {
		r := <-done
		c.agents[r.i] = r.a
	}
	c.waitVoters(3, c.agents...)
	return c
}

// peers returns the raft peers an agent reports.
func (c *e2eCluster) peers(a *registrartest.Agent) []registrar.RaftPeer {
	out, err := a.CLI("raft", "peers", "-json")
	if err != nil {
		return nil
	}
	var p []registrar.RaftPeer
	_ = json.Unmarshal([]byte(out), &p)
	return p
}

func (c *e2eCluster) status(a *registrartest.Agent) registrar.Status {
	out, err := a.CLI("status", "-json")
	var s registrar.Status
	if err == nil {
		_ = json.Unmarshal([]byte(out), &s)
	}
	return s
}

func (c *e2eCluster) waitVoters(n int, on ...*registrartest.Agent) {
	c.t.Helper()
	waitFor(c.t, 30*time.Second, fmt.Sprintf("%d raft voters with a leader", n), func() bool {
		for _, a := range on {
			p := c.peers(a)
			leader := false
			for _, x := range p {
				leader = leader || x.Leader
			}
			if len(p) != n || !leader {
				return false
			}
		}
		return true
	})
}

func (c *e2eCluster) leader() *registrartest.Agent {
	for _, a := range c.agents {
		if a.Exited() {
			continue
		}
		if s := c.status(a); s.Raft.State == "Leader" {
			return a
		}
	}
	return nil
}

// Ensure the cluster behaves as the issue describes, with the built
// binaries on loopback.
func TestE2E_Cluster(t *testing.T) {
	c := startE2ECluster(t)
	pe := newASAPPE(t)
	const per = 6
	var ids [3][]uint32
	for i, a := range c.agents {
		cl := dialAddr(t, a.ASAP, true)
		for j := 0; j < per; j++ {
			id := uint32(100*(i+1) + j)
			mustRegister(t, cl, "pool", pe.element(id))
			ids[i] = append(ids[i], id)
		}
	}
	resolveAll := func(a *registrartest.Agent) int {
		return len(resolve(t, dialAddr(t, a.ASAP, false), "pool", asap.ItemsAll).PEs)
	}
	for _, a := range c.agents {
		waitValue(t, 10*time.Second, "replication", func() int { return resolveAll(a) }, 3*per)
	}

	// kill -9 a registrar: all its PEs get a new home at the survivors.
	victim := c.agents[2]
	victimID := c.status(victim).ID
	start := time.Now()
	victim.Kill()
	survivors := c.agents[:2]
	waitFor(t, 30*time.Second, "PEs of the killed registrar re-homed", func() bool {
		out, err := survivors[0].CLI("pools", "-json", "pool")
		if err != nil {
			return false
		}
		var d registrar.PoolDetail
		if json.Unmarshal([]byte(out), &d) != nil || len(d.PEs) != 3*per {
			return false
		}
		for _, p := range d.PEs {
			if p.Home == victimID {
				return false
			}
		}
		return true
	})
	t.Logf("kill -9 to last PE re-homed: %v", time.Since(start))
	for _, a := range survivors {
		if n := resolveAll(a); n != 3*per {
			t.Errorf("survivor resolves %d PEs, want %d", n, 3*per)
		}
	}

	// Restart it: it catches up.
	victim.RestartAndWait()
	waitValue(t, 20*time.Second, "restarted registrar caught up", func() int { return resolveAll(victim) }, 3*per)
	c.waitVoters(3, c.agents...)

	// Wipe its data dir: it comes back as a new member, the old one removed.
	victim.Kill()
	if err := os.RemoveAll(victim.Dir); err != nil {
		t.Fatal(err)
	}
	victim.RestartAndWait()
	newID := c.status(victim).ID
	if newID == victimID {
		t.Fatalf("wiped registrar kept its ID %s", newID)
	}
	waitFor(t, 30*time.Second, "old ID removed and new ID a voter", func() bool {
		p := c.peers(c.agents[0])
		has := map[string]bool{}
		for _, x := range p {
			has[x.ID] = true
		}
		return len(p) == 3 && has[newID] && !has[victimID]
	})
	waitValue(t, 20*time.Second, "new member caught up", func() int { return resolveAll(victim) }, 3*per)

	// Kill two of three: resolution still answers, registration refused.
	c.agents[0].Kill()
	c.agents[1].Kill()
	if n := resolveAll(victim); n != 3*per {
		t.Errorf("lone survivor resolves %d PEs, want %d", n, 3*per)
	}
	cl := dialAddr(t, victim.ASAP, true)
	resp := register(t, cl, "pool", pe.element(999))
	if !resp.Reject || resp.Error.First() != asap.CauseLackOfResources {
		t.Errorf("registration without quorum: %+v, want refused (lack of resources)", resp)
	}
	waitFor(t, 10*time.Second, "status says stale", func() bool { return c.status(victim).Stale })

	// Bring one back: everything converges and registrations work again.
	c.agents[0].RestartAndWait()
	waitFor(t, 30*time.Second, "quorum back", func() bool {
		r := register(t, cl, "pool", pe.element(999))
		return !r.Reject
	})
	waitFor(t, 20*time.Second, "converged", func() bool {
		return resolveAll(c.agents[0]) == 3*per+1 && resolveAll(victim) == 3*per+1
	})
}

// Ensure no acknowledged registration is ever lost: PEs register at every
// registrar while the leader is killed (and restarted) again and again;
// afterwards every acknowledged PE is present at every registrar.
func TestE2E_NoAckedRegistrationLost(t *testing.T) {
	c := startE2ECluster(t)
	pe := newASAPPE(t)
	stop := make(chan struct{})
	var ackCount atomic.Int64 // acknowledged registrations so far, all clients
	type acked struct{ ids []uint32 }
	const perAgent = 4
	results := make(chan acked, 3*perAgent)
	for k := 0; k < 3*perAgent; k++ {
		i, a := k, c.agents[k%3]
		go func(i int, a *registrartest.Agent) {
			var got []uint32
			defer func() { results <- acked{got} }()
			var cl *client
			id := uint32(1_000_000 * (i + 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if cl == nil {
					cl = tryDial(t, a.ASAP)
					if cl == nil {
						time.Sleep(50 * time.Millisecond)
						continue
					}
				}
				id++
				cl.send(&asap.Registration{PoolHandle: "durable", PoolElement: pe.element(id)})
				select {
				case m, ok := <-cl.in:
					if !ok {
						cl = nil // registrar killed: reconnect
						continue
					}
					if r, isResp := m.(*asap.RegistrationResponse); isResp && !r.Reject && r.ID == id {
						got = append(got, id)
						ackCount.Add(1)
					}
				case <-time.After(10 * time.Second):
					cl.c.Close()
					cl = nil
				}
			}
		}(i, a)
	}
	// Each phase lasts until the clients got more acknowledgements, so
	// registrations really run before, while and after each leader is
	// down, however slow the machine is.
	progress := func(n int64, what string) {
		t.Helper()
		since := ackCount.Load()
		waitFor(t, 60*time.Second, fmt.Sprintf("%d more acknowledged registrations %s", n, what), func() bool { return ackCount.Load() >= since+n })
	}
	for round := 0; round < 3; round++ {
		progress(300, "before the kill")
		l := c.leader()
		if l == nil {
			t.Fatal("no leader")
		}
		l.Kill()
		progress(100, "with the leader killed")
		l.RestartAndWait()
		c.waitVoters(3, c.agents...)
	}
	progress(200, "after the last restart")
	close(stop)
	var all []uint32
	for i := 0; i < 3*perAgent; i++ {
		all = append(all, (<-results).ids...)
	}
	if len(all) < 1000 {
		t.Fatalf("only %d registrations acknowledged", len(all))
	}
	for _, a := range c.agents {
		waitFor(t, 30*time.Second, "every acknowledged PE at "+a.HTTP, func() bool {
			out, err := a.CLI("pools", "-json", "durable")
			if err != nil {
				return false
			}
			var d registrar.PoolDetail
			if json.Unmarshal([]byte(out), &d) != nil {
				return false
			}
			have := map[string]bool{}
			for _, p := range d.PEs {
				have[p.ID] = true
			}
			for _, id := range all {
				if !have[fmt.Sprintf("0x%08x", id)] {
					return false
				}
			}
			return true
		})
	}
	t.Logf("%d acknowledged registrations across 3 leader kills, all present at every registrar", len(all))
}

// tryDial connects a client, or returns nil when the registrar is down.
func tryDial(t *testing.T, addr string) (cl *client) {
	defer func() {
		if recover() != nil {
			cl = nil
		}
	}()
	ft := &failSoft{TB: t}
	return dialAddr(ft, addr, true)
}

// failSoft turns Fatal into a panic caught by tryDial (the registrar may
// be down while a test dials it).
type failSoft struct{ testing.TB }

func (f *failSoft) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (f *failSoft) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (f *failSoft) Errorf(format string, args ...any) { f.TB.Logf("(ignored) "+format, args...) }
