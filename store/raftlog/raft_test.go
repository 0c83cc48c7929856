package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rserpool-go/registrar/asap/sharedtest"
)

// raftTestFSM records the commands raft applies.
type raftTestFSM struct {
	mu   sync.Mutex
	cmds [][]byte
}

// Apply records a copy of the command.
func (f *raftTestFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, bytes.Clone(l.Data))
	return len(f.cmds)
}

// Snapshot is not expected: the test disables snapshots.
func (f *raftTestFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("raftTestFSM does not snapshot")
}

// Restore is not expected: the test takes no snapshots.
func (f *raftTestFSM) Restore(rc io.ReadCloser) error {
	_ = rc.Close()
	return errors.New("raftTestFSM does not restore")
}

// commands returns a copy of the applied commands.
func (f *raftTestFSM) commands() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

// raftWaitFor polls cond every 10 ms until it returns nil or timeout
// passes.
func raftWaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startRaftOn starts a single-node raft on the log w and the stable store
// s, with an in-memory transport and snapshot store.
func startRaftOn(t *testing.T, w *WAL, s *Stable, fsm raft.FSM) *raft.Raft {
	t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = "node1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotThreshold = math.MaxUint64 / 2 // keep every entry in the log
	conf.SnapshotInterval = time.Hour
	conf.Logger = sharedtest.Logger(t, "raft")
	_, trans := raft.NewInmemTransport("node1")
	r, err := raft.NewRaft(conf, fsm, w, s, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatalf("raft.NewRaft: %v", err)
	}
	return r
}

// Ensure that hashicorp/raft runs on the WAL and the stable store: a
// single node bootstraps, commits 1000 commands, shuts down, and after a
// restart on the same files recovers its last index, term and
// configuration and applies every command again, with their contents and
// append times.
func TestRaft_RestartOnWALAndStable(t *testing.T) {
	dir := t.TempDir()
	const n = 1000
	open := func() (*WAL, *Stable) {
		w, err := OpenWAL(filepath.Join(dir, "wal"), nil) // synced, as in production
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		return w, mustOpenStable(t, filepath.Join(dir, "raft.db"), nil)
	}

	// First life.
	w, s := open()
	fsm := &raftTestFSM{}
	r := startRaftOn(t, w, s, fsm)
	cfg := raft.Configuration{Servers: []raft.Server{{ID: "node1", Address: "node1"}}}
	if err := r.BootstrapCluster(cfg).Error(); err != nil {
		t.Fatalf("BootstrapCluster: %v", err)
	}
	raftWaitFor(t, 10*time.Second, func() error {
		if st := r.State(); st != raft.Leader {
			return fmt.Errorf("state %v, want Leader", st)
		}
		return nil
	})
	want := make([][]byte, n)
	futures := make([]raft.ApplyFuture, n)
	for i := range n {
		want[i] = fmt.Appendf(nil, "cmd-%04d-%s", i, bytes.Repeat([]byte{byte(i)}, i%50))
		futures[i] = r.Apply(want[i], 5*time.Second)
	}
	for i, f := range futures {
		if err := f.Error(); err != nil {
			t.Fatalf("Apply #%d: %v", i, err)
		}
		if got := f.Response(); got != i+1 {
			t.Fatalf("Apply #%d: FSM response %v, want %d", i, got, i+1)
		}
	}
	lastIndex := r.LastIndex()
	term := r.CurrentTerm()
	if lastIndex < n {
		t.Fatalf("raft LastIndex %d after %d commands", lastIndex, n)
	}
	if err := r.Shutdown().Error(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if first, last := mustIndexes(w); first != 1 || last != lastIndex {
		t.Errorf("the log holds [%d, %d], want [1, %d]", first, last, lastIndex)
	}
	if err := errors.Join(w.Close(), s.Close()); err != nil {
		t.Fatal(err)
	}

	// Second life: same files, fresh FSM.
	w2, s2 := open()
	var commands int
	for i := uint64(1); i <= lastIndex; i++ {
		var l raft.Log
		if err := w2.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d) after reopen: %v", i, err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		if commands == n {
			t.Fatalf("GetLog(%d): more than %d command entries", i, n)
		}
		if !bytes.Equal(l.Data, want[commands]) {
			t.Errorf("GetLog(%d) = %q, want command #%d %q", i, l.Data, commands, want[commands])
		}
		if l.AppendedAt.IsZero() {
			t.Errorf("GetLog(%d): AppendedAt not kept", i)
		}
		commands++
	}
	if commands != n {
		t.Errorf("%d command entries in the log, want %d", commands, n)
	}
	if v, err := s2.GetUint64([]byte("CurrentTerm")); err != nil || v != term {
		t.Errorf("stable CurrentTerm = %d, %v; want %d", v, err, term)
	}

	fsm2 := &raftTestFSM{}
	r2 := startRaftOn(t, w2, s2, fsm2)
	defer func() {
		if err := r2.Shutdown().Error(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()
	if got := r2.LastIndex(); got != lastIndex {
		t.Errorf("restarted raft LastIndex %d, want %d", got, lastIndex)
	}
	if err := r2.GetConfiguration().Error(); err != nil {
		t.Fatal(err)
	}
	if got := r2.GetConfiguration().Configuration(); len(got.Servers) != 1 || got.Servers[0].ID != "node1" {
		t.Errorf("restarted raft configuration %+v, want node1 alone", got)
	}
	raftWaitFor(t, 10*time.Second, func() error {
		if got := len(fsm2.commands()); got != n {
			return fmt.Errorf("restarted FSM applied %d commands, want %d", got, n)
		}
		return nil
	})
	for i, c := range fsm2.commands() {
		if !bytes.Equal(c, want[i]) {
			t.Fatalf("restarted FSM command #%d = %q, want %q", i, c, want[i])
		}
	}
	if r2.CurrentTerm() <= term {
		t.Errorf("term after restart %d, want > %d", r2.CurrentTerm(), term)
	}
	// The restarted leader keeps appending where the log left off.
	if err := r2.Apply([]byte("after restart"), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if _, got := mustIndexes(w2); got <= lastIndex+1 {
		t.Errorf("store LastIndex %d after a new command, want > %d", got, lastIndex+1)
	}
}

// mustIndexes is the log's first and last index.
func mustIndexes(w *WAL) (first, last uint64) {
	first, _ = w.FirstIndex()
	last, _ = w.LastIndex()
	return first, last
}
