package registrar

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/enrp"
)

// Ensure the history's rules: a cursor that the history overtook is
// told so (errBehind) while new ones read on, a resume is refused below
// the floor, a resume starts after the last raft event at its index
// (member and leader events at that index come again), and a group of
// events of one raft index is never split between reads.
func TestWatcher_History(t *testing.T) {
	w := newWatcher(nil, 100)
	add := func(index uint64, local bool, n int) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !local {
			w.last = max(w.last, index) // as follow does
		}
		for range n {
			w.addLocked(&WatchEvent{Index: index, Type: EventPEUpdated, Pool: "p", local: local})
		}
	}
	slow, _, ok := w.open(0, false, "")
	if !ok {
		t.Fatal("a live cursor was refused")
	}
	for i := uint64(1); i <= 90; i++ {
		add(i, false, 1)
	}
	add(90, true, 1) // a member event after index 90
	add(91, false, 300)
	if _, _, _, err := slow.next(nil); !errors.Is(err, errBehind) {
		t.Errorf("a cursor 391 events behind a history of 100: %v, want errBehind", err)
	}
	if _, _, ok := w.open(89, true, ""); ok {
		t.Errorf("resume from 89 with the floor at %d was accepted", w.floor)
	}
	c, _, ok := w.open(91, true, "")
	if evs, _, at, err := c.next(nil); !ok || err != nil || len(evs) != 0 || at != 91 {
		t.Errorf("resume at the newest index: ok %v, %d events, at %d, %v; want none, at 91", ok, len(evs), at, err)
	}
	w = newWatcher(nil, 1000)
	add(1, false, 1)
	add(1, true, 1)
	add(2, false, 300)
	add(3, false, 1)
	c, _, _ = w.open(1, true, "")
	evs, _, at, err := c.next(nil)
	if err != nil || len(evs) != 301 || !evs[0].local || evs[1].Index != 2 || at != 2 {
		t.Errorf("resume after index 1: %d events (first local %v), at %d, %v; want the member event again, then index 2's 300 whole, at 2", len(evs), len(evs) > 0 && evs[0].local, at, err)
	}
	if evs, _, at, _ = c.next(nil); len(evs) != 1 || evs[0].Index != 3 || at != 3 {
		t.Errorf("second read: %d events at %d, want index 3's one", len(evs), at)
	}
	// A blocking query sees a pool change at its last event, and every
	// pool, even one it never saw, change at a reset.
	if i, _ := w.poolIndex("p"); i != 3 {
		t.Errorf("pool index %d, want 3", i)
	}
	w.mu.Lock()
	w.addLocked(&WatchEvent{Index: 9, Type: EventReset})
	w.mu.Unlock()
	for _, h := range []asap.PoolHandle{"p", "restored"} {
		if i, _ := w.poolIndex(h); i != 9 {
			t.Errorf("after a reset at 9 pool %s is at %d", h, i)
		}
	}
}

// BenchmarkWatcher_Registration is the change stream's own work per
// registration (events built, JSON encoded, stored in the history), done
// on the watcher's goroutine whether or not anyone watches.
func BenchmarkWatcher_Registration(b *testing.B) {
	w := newWatcher(nil, DefaultWatchHistory)
	pe := asap.PoolElement{ID: 1, Home: 7, Lifetime: 30000, Policy: asap.Policy{Type: asap.PolicyLeastUsed, Load: 5},
		User: asap.Transport{Kind: asap.ParamTCPTransport, Port: 7000, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pe.ID = uint32(i + 1)
		c := cluster.Change{Kind: cluster.ChangeCommand, Index: uint64(i + 1),
			Command: cluster.NewUpdate(time.Unix(1700000000, 0), enrp.AddPE, 7, "pool", pe),
			Results: []cluster.OpResult{{Changed: 1, Added: true}}}
		w.follow(&c)
	}
}
