package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/cluster/clustertest"
	"github.com/rserpool-go/registrar/snapshot"
)

func testPE(id, home uint32, policy asap.PolicyType) asap.PoolElement {
	return asap.PoolElement{ID: id, Home: home, Lifetime: 30000,
		User:   asap.Transport{Kind: asap.ParamTCPTransport, Port: 7000, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		Policy: asap.Policy{Type: policy}}
}

// committed picks the changes of the raft log (not leader or member
// events, which come when raft and gossip see them).
func committed(c *cluster.Change) bool {
	return c.Kind == cluster.ChangeCommand || c.Kind == cluster.ChangeRestore
}

// next waits for the subscription's next change.
func next(t *testing.T, sub *cluster.Subscription) cluster.Change {
	t.Helper()
	select {
	case c, ok := <-sub.C():
		if !ok {
			t.Fatalf("subscription ended (%v), want a change", sub.Err())
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no change delivered within 10 s")
	}
	return cluster.Change{}
}

// Ensure the writes commit, are read back locally, and are delivered to
// a subscriber in commit order with increasing raft indexes; a refused PE
// is answered with the store's cause without a raft entry.
func TestHandlespace_WritesAndSubscribe(t *testing.T) {
	hs := clustertest.Open(t, 1, nil)
	sub := hs.Subscribe(16, committed)
	defer sub.Close()
	ctx := context.Background()
	if err := hs.Register(ctx, "pool", testPE(10, 1, asap.PolicyRoundRobin)); err != nil {
		t.Fatal(err)
	}
	if err := hs.Register(ctx, "pool", testPE(11, 1, asap.PolicyRoundRobin)); err != nil {
		t.Fatal(err)
	}
	if pe, ok := hs.Lookup("pool", 10); !ok || pe.Element.Home != 1 {
		t.Errorf("Lookup after Register: %+v, %v", pe, ok)
	}
	before := hs.Status().LastIndex
	err := hs.Register(ctx, "pool", testPE(12, 1, asap.PolicyLeastUsed))
	var oe *asap.OperationError
	if !errors.As(err, &oe) || oe.First() != asap.CauseInconsistentPolicy {
		t.Errorf("a PE whose policy differs from its pool's: %v (operation error %v), want cause inconsistent pooling policy", err, oe)
	}
	if after := hs.Status().LastIndex; after != before {
		t.Errorf("a refused PE was proposed: raft's last index %d, was %d", after, before)
	}
	if err := hs.Deregister(ctx, "pool", testPE(10, 1, asap.PolicyRoundRobin)); err != nil {
		t.Fatal(err)
	}
	err = hs.Deregister(ctx, "pool", testPE(99, 1, asap.PolicyRoundRobin))
	if !errors.Is(err, cluster.ErrPENotFound) {
		t.Errorf("deregistration of an unknown PE: %v, want ErrPENotFound", err)
	}
	if err := hs.Takeover(ctx, 1, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	if n := len(hs.Owned(2)); n != 1 {
		t.Errorf("after the takeover registrar 2 owns %d PEs, want 1", n)
	}
	var last uint64
	for i, want := range []struct {
		kind   cluster.Kind
		failed bool
		added  bool // the store says it added a PE
		moved  int  // PEs the store says moved
	}{{cluster.KindUpdate, false, true, 0}, {cluster.KindUpdate, false, true, 0}, {cluster.KindRemove, false, false, 0},
		{cluster.KindRemove, true, false, 0}, {cluster.KindTakeover, false, false, 1}} {
		c := next(t, sub)
		if c.Kind != cluster.ChangeCommand || c.Command.Kind != want.kind || (c.Err != nil) != want.failed || c.Index <= last {
			t.Errorf("change %d: kind %v/%v at index %d (after %d), err %v; want a %v command, failed %v, at a higher index",
				i, c.Kind, c.Command.Kind, c.Index, last, c.Err, want.kind, want.failed)
		}
		if len(c.Results) != 1 || c.Results[0].Added != want.added || len(c.Results[0].PEs) != want.moved {
			t.Errorf("change %d: results %+v, want one with Added %v and %d PEs moved", i, c.Results, want.added, want.moved)
		}
		if want.kind == cluster.KindRemove && c.Command.Reason != cluster.ReasonDeregistered {
			t.Errorf("change %d: a deregistration's reason is %v", i, c.Command.Reason)
		}
		last = c.Index
	}
	if got := hs.LastApplied(); got < last {
		t.Errorf("LastApplied %d is behind the last change delivered (%d)", got, last)
	}
	if st := hs.Stats(); st.AppliedEntries < 5 || st.LeaderChanges < 1 {
		t.Errorf("stats %+v: want at least 5 entries applied and 1 leader seen", st)
	}
}

// Ensure a subscriber that does not read is dropped (told by
// ErrSlowSubscriber) without holding up commits or the other subscribers,
// and that a filter picks the changes delivered.
func TestHandlespace_SlowSubscriberDropped(t *testing.T) {
	hs := clustertest.Open(t, 1, nil)
	slow := hs.Subscribe(2, committed)
	takeovers := hs.Subscribe(8, func(c *cluster.Change) bool { return c.Command.Kind == cluster.KindTakeover })
	all := hs.Subscribe(64, committed)
	defer all.Close()
	ctx := context.Background()
	for i := uint32(1); i <= 10; i++ {
		done := make(chan error, 1)
		go func() { done <- hs.Register(ctx, "pool", testPE(i, 1, asap.PolicyRoundRobin)) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("registration %d did not commit within 10 s: a subscriber that does not read holds up the FSM", i)
		}
	}
	if err := hs.Takeover(ctx, 1, []uint32{3}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 11; i++ {
		next(t, all)
	}
	if c := next(t, takeovers); c.Command.Kind != cluster.KindTakeover {
		t.Errorf("the filtered subscription delivered a %v command, want only the takeover", c.Command.Kind)
	}
	n := 0
	for range slow.C() {
		n++
	}
	if n != 2 || !errors.Is(slow.Err(), cluster.ErrSlowSubscriber) {
		t.Errorf("the slow subscriber got %d changes and ended with %v, want its 2 buffered ones and ErrSlowSubscriber", n, slow.Err())
	}
	takeovers.Close()
	if _, ok := <-takeovers.C(); ok || !errors.Is(takeovers.Err(), cluster.ErrSubscriptionClosed) {
		t.Errorf("after Close: open %v, err %v; want closed with ErrSubscriptionClosed", ok, takeovers.Err())
	}
}

// Ensure a write that cannot commit (no leader) is answered with Lack of
// Resources and says why.
func TestHandlespace_WriteWithoutLeader(t *testing.T) {
	hs := clustertest.Open(t, 1, func(c *cluster.Config) {
		c.Bootstrap = false // never elects itself: no leader
		c.Raft.ApplyTimeout = 200 * time.Millisecond
	})
	err := hs.Register(context.Background(), "pool", testPE(1, 1, asap.PolicyRoundRobin))
	var oe *asap.OperationError
	if !errors.Is(err, cluster.ErrNoLeader) || !errors.As(err, &oe) || oe.First() != asap.CauseLackOfResources {
		t.Errorf("a write without a leader: %v (operation error %v), want ErrNoLeader with Lack of Resources", err, oe)
	}
	if !hs.Status().Stale() {
		t.Errorf("status %+v without a leader, want stale", hs.Status())
	}
}

// Ensure the cluster operations of a one-registrar handlespace: it is the
// only voter, an unknown peer cannot be removed, and a snapshot written
// from it restores the same handlespace through raft.
func TestHandlespace_ClusterOperations(t *testing.T) {
	hs := clustertest.Open(t, 7, func(c *cluster.Config) { c.DataDir = t.TempDir() })
	servers, err := hs.Servers()
	if err != nil || len(servers) != 1 || servers[0].ID != 7 || servers[0].Suffrage != cluster.Voter || servers[0].Address != hs.RaftAddr() {
		t.Errorf("servers %+v, %v; want registrar 7 alone, a voter at %s", servers, err, hs.RaftAddr())
	}
	if st := hs.Status(); st.LeaderID != 7 || st.State != "Leader" {
		t.Errorf("status %+v, want registrar 7 leading", st)
	}
	if err := hs.RemovePeer(8); !errors.Is(err, cluster.ErrUnknownPeer) {
		t.Errorf("RemovePeer of a registrar not in the configuration: %v, want ErrUnknownPeer", err)
	}
	ctx := context.Background()
	for i := uint32(1); i <= 3; i++ {
		if err := hs.Register(ctx, "pool", testPE(i, 7, asap.PolicyRoundRobin)); err != nil {
			t.Fatal(err)
		}
	}
	if err := hs.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	meta, err := hs.WriteSnapshot(&buf, snapshot.Meta{RegistrarID: 7})
	if err != nil || meta.PEs != 3 || meta.RaftIndex != hs.LastApplied() || meta.RaftTerm != hs.Status().Term {
		t.Fatalf("WriteSnapshot: %+v, %v; want 3 PEs at index %d, term %d", meta, err, hs.LastApplied(), hs.Status().Term)
	}
	path := filepath.Join(t.TempDir(), "s.snap")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := hs.Register(ctx, "pool", testPE(4, 7, asap.PolicyRoundRobin)); err != nil {
		t.Fatal(err)
	}
	before4 := hs.LastApplied() // the registration of PE 4
	sub := hs.Subscribe(4, committed)
	defer sub.Close()
	if _, err := hs.RestoreFile(ctx, path); err != nil {
		t.Fatal(err)
	}
	if c := next(t, sub); c.Kind != cluster.ChangeRestore || c.Index <= before4 {
		t.Errorf("after RestoreFile the subscriber got %+v, want a restore after index %d", c, before4)
	}
	if _, n := hs.Counts(); n != 3 {
		t.Errorf("after the restore the handlespace holds %d PEs, want the snapshot's 3", n)
	}
	if err := os.WriteFile(path, buf.Bytes()[:buf.Len()-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := hs.RestoreFile(ctx, path); !snapshot.IsFormatError(err) {
		t.Errorf("RestoreFile of a truncated snapshot: %v, want a format error", err)
	}
}
