package cluster

import (
	"context"
	"testing"
	"time"
)

// Ensure a session's write at a follower is answered once committed,
// before the follower applied it, and that Sync then waits until the
// follower applied it (the session reads its own writes); and that the
// plain Register still answers only after the local apply.
func TestSession_FollowerAnswersCommittedSyncWaitsForApply(t *testing.T) {
	c := startInmemCluster3(t)
	l := c.leader()
	f := c.followers(l)[0]
	hs := &Handlespace{cfg: Config{ID: f.id, Raft: DefaultRaftConfig(ProfileLocal)}, store: f.st, node: f.node}
	register(t, f, 1) // the pool exists everywhere

	gate := make(chan struct{})
	hold := func() { <-gate }
	f.node.fsm.testBeforeApply.Store(&hold) // the follower applies nothing until the gate opens
	opened := false
	open := func() {
		if !opened {
			opened = true
			f.node.fsm.testBeforeApply.Store(nil)
			close(gate)
		}
	}
	defer open()

	var s Session
	if err := hs.RegisterIn(context.Background(), &s, "pool", pe(2, f.id)); err != nil {
		t.Fatalf("RegisterIn at a follower that applies nothing: %v", err)
	}
	if _, ok := f.st.Lookup("pool", 2); ok {
		t.Fatal("the follower applied the PE although its apply was held: the test proves nothing")
	}
	if s.pending == 0 {
		t.Fatal("the session did not record its write that the follower has not applied")
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	ok := hs.Sync(short, &s)
	cancel()
	if ok || s.pending == 0 {
		t.Fatalf("Sync while the follower cannot apply: %v, pending %d; want false and the write still pending", ok, s.pending)
	}
	synced := make(chan bool, 1)
	go func() { synced <- hs.Sync(context.Background(), &s) }()
	select {
	case <-synced:
		t.Fatal("Sync returned while the follower had not applied the session's write")
	case <-time.After(100 * time.Millisecond):
	}
	open()
	select {
	case ok := <-synced:
		if !ok {
			t.Fatal("Sync reported false after the follower applied the write")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Sync did not return after the follower applied the write")
	}
	if _, ok := f.st.Lookup("pool", 2); !ok {
		t.Fatal("Sync returned but the follower does not have the session's PE")
	}
	if s.pending != 0 {
		t.Fatalf("pending %d after Sync, want 0", s.pending)
	}

	// Register (no session) answers only after the follower applied it.
	if err := hs.Register(context.Background(), "pool", pe(3, f.id)); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.st.Lookup("pool", 3); !ok {
		t.Fatal("Register answered at a follower before it applied the PE")
	}
	// A session whose writes are applied here syncs at once.
	var s2 Session
	if err := hs.RegisterIn(context.Background(), &s2, "pool", pe(4, l.id)); err != nil {
		t.Fatal(err)
	}
	if !hs.Sync(context.Background(), &s2) {
		t.Fatal("Sync of a session whose write the follower applied: false")
	}
	if _, ok := f.st.Lookup("pool", 4); !ok || s2.pending != 0 {
		t.Fatalf("after Sync: PE found %v, pending %d", ok, s2.pending)
	}
}
