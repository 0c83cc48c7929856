package registrar

import (
	"sync"
	"testing"
	"time"
)

// The peering loop and the PRESENCE multicast sender jitter their periods
// from two goroutines at once; run with -race.
func TestPeers_JitterConcurrent(t *testing.T) {
	p := newPeers(&Registrar{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if d := p.jitter(time.Second); d < 875*time.Millisecond || d > 1125*time.Millisecond {
					t.Errorf("jitter(1s) = %v, want 1s ± 12.5 %%", d)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Ensure a peer stays foreign for the cluster's reconcile loop once it is
// dropped (dead, or taken over by another peer whose INIT_TAKEOVER we
// acknowledged): a static peer's entry forgets the ID of a dead peer,
// and a learnt one is removed, and the reconcile loop then took the dead
// peer's PEs over itself, bypassing the ENRP takeover. A registrar gossip
// knows is never foreign.
func TestPeers_DroppedPeerStaysForeign(t *testing.T) {
	r := &Registrar{id: 0x0a, cfg: Config{ENRPPeers: []string{"tcp:127.0.0.1:9901"}}}
	p := newPeers(r)
	static := p.all[0]
	p.mu.Lock()
	static.id = 0xdead0001
	learnt := p.peerLocked(0xdead0002, nil)
	if learnt != nil {
		t.Fatal("peerLocked made a peer without its server information")
	}
	learnt = &foreignPeer{id: 0xdead0002, addr: "tcp:127.0.0.2:9901"}
	p.setAllLocked(append(p.all, learnt))
	p.acked[0xdead0003] = 0xbeef // another peer takes 0xdead0003 over
	p.mu.Unlock()
	for _, id := range []uint32{0xdead0001, 0xdead0002, 0xdead0003} {
		if !p.isForeign(id) {
			t.Errorf("peer %08x is not foreign while a peer", id)
		}
	}
	p.mu.Lock()
	p.dropLocked(static)
	p.dropLocked(learnt)
	p.mu.Unlock()
	if static.id != 0 || len(p.all) != 1 {
		t.Fatalf("after the drop: static ID %08x, %d peers; want the static entry kept without an ID", static.id, len(p.all))
	}
	for _, id := range []uint32{0xdead0001, 0xdead0002, 0xdead0003} {
		if !p.isForeign(id) {
			t.Errorf("peer %08x is no longer foreign after it was dropped: the reconcile loop would take its PEs over", id)
		}
	}
	if p.isForeign(0x0a) || p.isForeign(0x1234) {
		t.Error("this registrar, or a registrar never heard of, counts as foreign")
	}
}
