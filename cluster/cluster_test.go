package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/snapshot"
	"github.com/rserpool-go/registrar/store"
)

func pe(id, home uint32) asap.PoolElement {
	return asap.PoolElement{ID: id, Home: home, Lifetime: 30000,
		User:   asap.Transport{Kind: asap.ParamTCPTransport, Port: 7000, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		Policy: asap.Policy{Type: asap.PolicyRoundRobin},
		ASAP:   asap.Transport{Kind: asap.ParamSCTPTransport, Port: 7001, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}}
}

// Ensure every command kind survives the envelope, and bad envelopes are
// refused with ErrBadCommand.
func TestCommand_RoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	cmds := []Command{
		NewUpdate(at, enrp.AddPE, 1, "pool", pe(5, 1)),
		NewUpdate(at, enrp.DelPE, 1, "pool", pe(5, 1)),
		NewTakeover(at, 1, 2, []uint32{1, 3}),
		{Kind: KindDropOwner, Time: at, Target: enrp.NewTakeoverServer(1, 0, 9)},
		{Kind: KindReset, Time: at},
		NewRemove(at, ReasonKeepAlive, 1, "pool", pe(5, 1)),
		{Kind: KindBatch, Time: at, Updates: []*enrp.HandleUpdate{
			{Action: enrp.AddPE, PoolHandle: "a", PoolElement: pe(1, 7)},
			{Action: enrp.AddPE, PoolHandle: "b", PoolElement: pe(2, 7)},
		}},
	}
	for _, c := range cmds {
		b, err := c.Marshal()
		if err != nil {
			t.Fatalf("%v: %v", c.Kind, err)
		}
		got, err := UnmarshalCommand(b)
		if err != nil {
			t.Fatalf("%v: %v", c.Kind, err)
		}
		if !got.Time.Equal(c.Time) || got.Kind != c.Kind || !reflect.DeepEqual(got.Updates, c.Updates) ||
			!reflect.DeepEqual(got.Target, c.Target) || !reflect.DeepEqual(got.Owners, c.Owners) || got.Reason != c.Reason {
			t.Errorf("%v: got %+v, want %+v", c.Kind, got, c)
		}
	}
	good, _ := cmds[0].Marshal()
	bad := [][]byte{nil, good[:5], append([]byte{9}, good[1:]...), append([]byte{1, 99}, good[2:]...), good[:len(good)-3],
		func() []byte { b, _ := cmds[2].Marshal(); return b[:len(b)-2] }()}
	rm := NewRemove(at, ReasonLifetime, 1, "pool", pe(5, 1))
	remove, _ := rm.Marshal()
	noReason := append([]byte(nil), remove...)
	noReason[envelopeHeader] = 0
	add := NewUpdate(at, enrp.AddPE, 1, "pool", pe(5, 1))
	addInRemove, _ := add.Marshal()
	addInRemove = append(append(addInRemove[:2:2], addInRemove[2:envelopeHeader]...), append([]byte{byte(ReasonLifetime)}, addInRemove[envelopeHeader:]...)...)
	addInRemove[1] = byte(KindRemove)
	bad = append(bad, noReason, remove[:envelopeHeader+1], addInRemove)
	for _, c := range []Command{NewRemove(at, 0, 1, "pool", pe(5, 1)), {Kind: KindRemove, Time: at, Reason: ReasonKeepAlive,
		Updates: NewUpdate(at, enrp.AddPE, 1, "pool", pe(5, 1)).Updates}} {
		if _, err := c.Marshal(); !errors.Is(err, ErrBadCommand) {
			t.Errorf("marshal of a remove command with reason %v, action %v: %v, want ErrBadCommand", c.Reason, c.Updates[0].Action, err)
		}
	}
	for i, b := range bad {
		if _, err := UnmarshalCommand(b); !errors.Is(err, ErrBadCommand) {
			t.Errorf("bad envelope %d: got %v, want ErrBadCommand", i, err)
		}
	}
}

func logOf(t *testing.T, index uint64, c Command) *raft.Log {
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: b}
}

// Ensure the FSM applies a batch in one store transaction with the last
// index, reports per-command results, and skips entries the store already
// holds (the replay after a restart with NoSnapshotRestoreOnStart).
func TestFSM_ApplyBatchAndReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hs.db")
	st, err := store.Open(path, &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	fsm := NewFSM(st, snapshot.Meta{}, nil)
	sub := fsm.changes.subscribe(16, nil)
	at := time.Unix(1700000000, 0)
	logs := []*raft.Log{
		logOf(t, 1, NewUpdate(at, enrp.AddPE, 1, "pool", pe(1, 1))),
		{Index: 2, Type: raft.LogConfiguration},
		logOf(t, 3, NewUpdate(at, enrp.AddPE, 1, "pool", pe(2, 1))),
		logOf(t, 4, NewUpdate(at, enrp.AddPE, 1, "pool", func() asap.PoolElement {
			p := pe(3, 1)
			p.Policy.Type = asap.PolicyLeastUsed // inconsistent with the pool
			return p
		}())),
		{Index: 5, Type: raft.LogCommand, Data: []byte("garbage")},
	}
	resp := fsm.ApplyBatch(logs)
	if st.LastApplied() != 5 {
		t.Errorf("LastApplied %d, want 5", st.LastApplied())
	}
	if r := resp[0].(*ApplyResult); r.Failed() != nil {
		t.Errorf("first update: %v", r.Failed())
	}
	if resp[1] != nil {
		t.Errorf("configuration entry got %v", resp[1])
	}
	if r := resp[3].(*ApplyResult); !errors.Is(r.Failed(), store.ErrPolicyMismatch) {
		t.Errorf("inconsistent update: %v, want ErrPolicyMismatch", r.Failed())
	}
	if r := resp[4].(*ApplyResult); !errors.Is(r.Err, ErrBadCommand) {
		t.Errorf("garbage entry: %v, want ErrBadCommand", r.Err)
	}
	// The subscriber sees the three commands, in order, with their index
	// and result; neither the configuration entry nor the garbage.
	var seen []string
	for len(sub.C()) > 0 {
		c := <-sub.C()
		seen = append(seen, fmt.Sprintf("%d:%v:%v", c.Index, c.Command.Kind, errors.Is(c.Err, store.ErrPolicyMismatch)))
	}
	if want := []string{"1:update:false", "3:update:false", "4:update:true"}; !slices.Equal(seen, want) {
		t.Errorf("subscriber saw %q, want %q", seen, want)
	}
	// Replay: entries up to 5 are skipped, 6 applies.
	logs = append(logs[:1], logOf(t, 6, NewUpdate(at, enrp.DelPE, 1, "pool", pe(2, 1))))
	logs[0] = logOf(t, 3, NewUpdate(at, enrp.DelPE, 1, "pool", pe(1, 1))) // would delete PE 1 if applied
	resp = fsm.ApplyBatch(logs)
	if resp[0] != nil {
		t.Errorf("replayed entry applied: %v", resp[0])
	}
	if _, ok := st.Lookup("pool", 1); !ok {
		t.Error("a replayed entry changed the store")
	}
	if _, ok := st.Lookup("pool", 2); ok {
		t.Error("entry 6 not applied")
	}
	if st.LastApplied() != 6 {
		t.Errorf("LastApplied %d, want 6", st.LastApplied())
	}
	st.Close()
	// The applied index survives a reopen.
	st, err = store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.LastApplied() != 6 {
		t.Errorf("after reopen LastApplied %d, want 6", st.LastApplied())
	}
}

// Ensure a takeover command spreads the target's PEs over the owners.
func TestFSM_Takeover(t *testing.T) {
	st := store.OpenMemory(nil)
	fsm := NewFSM(st, snapshot.Meta{}, nil)
	at := time.Unix(1700000000, 0)
	var logs []*raft.Log
	for i := uint32(1); i <= 6; i++ {
		logs = append(logs, logOf(t, uint64(i), NewUpdate(at, enrp.AddPE, 9, "pool", pe(i, 9))))
	}
	logs = append(logs, logOf(t, 7, NewTakeover(at, 1, 9, []uint32{1, 2, 3})))
	fsm.ApplyBatch(logs)
	if n := len(st.Owned(9)); n != 0 {
		t.Errorf("target still owns %d PEs", n)
	}
	for _, o := range []uint32{1, 2, 3} {
		if n := len(st.Owned(o)); n != 2 {
			t.Errorf("owner %d has %d PEs, want 2", o, n)
		}
	}
}

// Ensure a node whose handlespace file is behind raft's newest snapshot
// (lost, or a crash after raft stored an installed snapshot) restores that
// snapshot at start, then raft replays the rest of the log.
func TestNode_CatchUpFromSnapshot(t *testing.T) {
	dir := t.TempDir()
	hs := filepath.Join(dir, "handlespace.db")
	open := func() (*Node, *store.Store) {
		st, err := store.Open(hs, &store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		cfg := DefaultRaftConfig(ProfileLocal)
		cfg.Bind = "127.0.0.1:0"
		n, err := OpenNode(NodeConfig{ID: 0x1234, Dir: filepath.Join(dir, "raft"), Raft: cfg, Bootstrap: true, NoSync: true}, st)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !n.IsLeader() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		return n, st
	}
	n, st := open()
	propose := func(id uint32) {
		res, err := n.Propose(context.Background(), NewUpdate(time.Now(), enrp.AddPE, 1, "pool", pe(id, 1)))
		if err == nil {
			err = res.Failed()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := uint32(1); i <= 5; i++ {
		propose(i)
	}
	if err := n.Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for i := uint32(6); i <= 8; i++ {
		propose(i) // after the snapshot: only in the log
	}
	n.Shutdown()
	st.Close()
	if err := os.Remove(hs); err != nil { // the handlespace is lost
		t.Fatal(err)
	}
	n, st = open()
	defer st.Close()
	defer n.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, c := st.Counts()
		if c == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart the store has %d PEs, want 8 (5 from the snapshot, 3 replayed)", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Ensure a forwarded-write connection whose first byte arrives only after
// the raft port closed is closed, not served: Close closed the connections
// it knew and waits for their goroutines, so a connection it never saw
// would keep it waiting for good.
func TestMuxLayer_ForwardAfterClose(t *testing.T) {
	m, err := newMuxLayer("127.0.0.1:0", nil, nil, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	m.serve = func(c net.Conn) { _, _ = io.Copy(io.Discard, c) } // until the connection closes
	m.Close()
	// A connection acceptLoop handed to classify before Close, whose
	// first byte comes after Close went through the connections.
	client, server := net.Pipe()
	defer server.Close() // let the test end either way
	defer client.Close()
	m.wg.Add(1)
	go m.classify(server)
	if _, err := client.Write([]byte{connForward}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a forwarded-write connection is served after Close; Close would wait for it forever")
	}
}

// Ensure a follower's read-your-writes wait ends as soon as the FSM
// applied the entry, and at the timeout if it never does.
func TestNode_WaitApplied(t *testing.T) {
	st := store.OpenMemory(nil)
	n := &Node{store: st, fsm: NewFSM(st, snapshot.Meta{}, nil)}
	l := logOf(t, 1, NewUpdate(time.Unix(1700000000, 0), enrp.AddPE, 1, "pool", pe(1, 1)))
	go func() {
		time.Sleep(50 * time.Millisecond)
		n.fsm.ApplyBatch([]*raft.Log{l})
	}()
	start := time.Now()
	n.waitApplied(context.Background(), 1, 10*time.Second)
	if st.LastApplied() != 1 {
		t.Fatalf("waitApplied returned at applied index %d, want 1", st.LastApplied())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("waitApplied took %v", d)
	}
	start = time.Now()
	n.waitApplied(context.Background(), 2, 100*time.Millisecond)
	if d := time.Since(start); d < 100*time.Millisecond || d > 5*time.Second {
		t.Errorf("waitApplied for an index never applied returned after %v, want the 100ms timeout", d)
	}
}

// Ensure the raft port closes at once the connections beyond
// maxRaftPortConns (before their first byte: silent ones, raft's and
// forwarded writes alike), keeps the others, and accepts again once some close: a flood
// of idle connections cannot take every descriptor of the process.
func TestMuxLayer_ConnectionCap(t *testing.T) {
	m, err := newMuxLayer("127.0.0.1:0", nil, nil, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	served := make(chan net.Conn, maxRaftPortConns)
	m.serve = func(c net.Conn) { // holds the connection, as serveForward
		defer c.Close()
		served <- c
		_, _ = io.Copy(io.Discard, c)
	}
	dial := func(kind byte) net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", m.Addr().String(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if kind != 0 {
			if _, err := c.Write([]byte{kind}); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	// closedByPeer waits for c to be closed by the raft port (true) or
	// for a short while without (false): a refusal closes at once.
	closedByPeer := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		var b [1]byte
		_, err := c.Read(b[:])
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	held := make([]net.Conn, 0, maxRaftPortConns)
	for range maxRaftPortConns {
		held = append(held, dial(connForward))
		<-served // counted and being served before the next
	}
	for i := range 20 {
		if c := dial(0); !closedByPeer(c, 10*time.Second) {
			t.Fatalf("connection %d beyond the raft port's cap of %d was not closed", i+1, maxRaftPortConns)
		}
	}
	if closedByPeer(held[0], 50*time.Millisecond) {
		t.Fatal("a forwarded-write connection within the cap was closed")
	}
	// One held connection closes: its slot is free again.
	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dial(connForward)
		if !closedByPeer(c, 100*time.Millisecond) {
			break // accepted and held
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection accepted on the raft port within 10s after one of the capped connections closed")
		}
	}
}
