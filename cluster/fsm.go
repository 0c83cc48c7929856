package cluster

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/rserpool-go/registrar/snapshot"
	"github.com/rserpool-go/registrar/store"
)

// ApplyResult is what the FSM answers for one committed command: the
// results of its store operations, or why the command could not be
// applied at all.
type ApplyResult struct {
	Results []store.Result
	Err     error
}

// Failed returns the first error of the command, if any.
func (r *ApplyResult) Failed() error {
	if r == nil {
		return errors.New("no apply result")
	}
	if r.Err != nil {
		return r.Err
	}
	for _, res := range r.Results {
		if res.Err != nil {
			return res.Err
		}
	}
	return nil
}

// FSM applies committed commands to the store. It implements
// raft.BatchingFSM so one bbolt transaction commits a whole batch of log
// entries together with the index of the last one. With
// raft.Config.NoSnapshotRestoreOnStart set, raft replays after a restart
// the entries following its newest snapshot; the FSM skips those the store
// already holds, so nothing is applied twice.
//
// The FSM never reads the clock: time travels in the command envelope.
//
// Restore takes the applied index from the snapshot's content. Snapshots
// an operator restores into a running cluster (raft.Restore) must carry
// index 0 there: their index belongs to another raft log, and raft applies
// the entries after the restore on top of it.
type FSM struct {
	store *store.Store
	log   hclog.Logger
	// meta is the metadata of the snapshots the FSM writes (package
	// snapshot's format): the registrar and its build.
	meta snapshot.Meta
	// changes tells subscribers what was applied (never blocking);
	// entries counts the raft entries applied.
	changes changeHub
	entries atomic.Uint64

	// applied, once someone waits for it (appliedSignal), is closed when
	// the store's applied index moved: after a batch or a restore.
	appliedMu sync.Mutex
	applied   chan struct{}

	// stop, closed by Stop, ends the wait for a store that cannot write;
	// broken is then the error of every later batch (FSM goroutine only).
	stop     chan struct{}
	stopOnce sync.Once
	broken   error
	// waiting is set while ApplyBatch waits for the store.
	waiting atomic.Bool
	// testBeforeApply, set by tests, runs before each batch is applied.
	testBeforeApply atomic.Pointer[func()]
}

// appliedSignal returns a channel closed the next time the store's
// applied index moves.
func (f *FSM) appliedSignal() <-chan struct{} {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	if f.applied == nil {
		f.applied = make(chan struct{})
	}
	return f.applied
}

func (f *FSM) notifyApplied() {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	if f.applied != nil {
		close(f.applied)
		f.applied = nil
	}
}

// NewFSM returns an FSM over st. Its snapshots are package snapshot's
// archives with the metadata meta (the raft index and the creation time
// are filled in for each).
func NewFSM(st *store.Store, meta snapshot.Meta, log hclog.Logger) *FSM {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &FSM{store: st, meta: meta, log: log, stop: make(chan struct{})}
}

// Stop ends a wait for the store (see ApplyBatch): the batch waiting and
// every later one are answered with an error and not applied. Called when
// the node shuts down, before raft. Idempotent.
func (f *FSM) Stop() { f.stopOnce.Do(func() { close(f.stop) }) }

// Waiting reports whether the FSM waits for the store to accept a batch.
func (f *FSM) Waiting() bool { return f.waiting.Load() }

// FSM apply retry delays while the store cannot write.
const (
	applyRetryMin = 20 * time.Millisecond
	applyRetryMax = 2 * time.Second
)

// applyStore applies a batch to the store. A store that cannot write
// (a storage fault, without group commit) changes nothing, so the FSM
// waits and applies the same batch again: skipping a committed entry
// would make this node's handlespace differ from the log, and raft gives
// no way to stop at it. The wait ends when the store accepts the batch or
// Stop is called; then this batch and the later ones are not applied (the
// store's applied index stays before them, so the next start replays
// them from the log).
func (f *FSM) applyStore(last uint64, ops []store.Op) ([]store.Result, error) {
	if f.broken != nil {
		return nil, f.broken
	}
	wait := applyRetryMin
	for {
		results, err := f.store.Apply(last, ops)
		if err == nil {
			if f.waiting.Swap(false) {
				f.log.Info("handlespace accepts writes again: applying raft entries", "index", last)
			}
			return results, nil
		}
		if errors.Is(err, store.ErrClosed) {
			f.broken = fmt.Errorf("cluster: raft index %d not applied: %w", last, err)
			return nil, f.broken
		}
		if !f.waiting.Swap(true) {
			f.log.Error("cannot apply raft entries to the handlespace: waiting until it can be written", "index", last, "error", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-f.stop:
			t.Stop()
			f.waiting.Store(false)
			f.broken = fmt.Errorf("cluster: raft index %d not applied (the node stopped while the handlespace could not be written; the raft log replays it at the next start): %w", last, err)
			f.log.Error("stopping with raft entries not applied; the next start replays them", "index", last, "error", err)
			return nil, f.broken
		case <-t.C:
		}
		wait = min(2*wait, applyRetryMax)
	}
}

var _ raft.BatchingFSM = (*FSM)(nil)

// Apply applies one log entry.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in one store transaction. Entries
// the store already holds (a replay after restart) are skipped.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	resp := make([]interface{}, len(logs))
	if len(logs) == 0 {
		return resp
	}
	if hook := f.testBeforeApply.Load(); hook != nil {
		(*hook)()
	}
	applied := f.store.LastApplied()
	var ops []store.Op
	type span struct {
		i, from, to int
		cmd         Command
	}
	var spans []span
	var last uint64
	var idx []uint64 // the raft index of each span
	for i, l := range logs {
		if l.Index <= applied {
			continue // already in the store
		}
		last = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		cmd, err := UnmarshalCommand(l.Data)
		if err != nil {
			f.log.Error("skipping undecodable raft command", "index", l.Index, "error", err)
			resp[i] = &ApplyResult{Err: err}
			continue
		}
		cops := cmd.Ops()
		spans = append(spans, span{i, len(ops), len(ops) + len(cops), cmd})
		idx = append(idx, l.Index)
		ops = append(ops, cops...)
	}
	if last == 0 {
		return resp
	}
	results, err := f.applyStore(last, ops)
	if err != nil {
		for i, l := range logs {
			if l.Index > applied && resp[i] == nil {
				resp[i] = &ApplyResult{Err: err}
			}
		}
		return resp
	}
	f.notifyApplied()
	changes := make([]Change, len(spans))
	for i := range spans {
		s := &spans[i]
		res := &ApplyResult{Results: results[s.from:s.to]}
		resp[s.i] = res
		changes[i] = Change{Kind: ChangeCommand, Index: idx[i], Command: s.cmd, Err: res.Failed(), Results: res.Results}
	}
	f.entries.Add(uint64(len(logs)))
	f.changes.publish(changes...)
	return resp
}

// Snapshot captures the handlespace: it opens the store's read view
// here, in the FSM goroutine, so the content is exactly the state at the
// index raft records; Persist writes it while applies continue.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	v, err := f.store.BeginView()
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &fsmSnapshot{f: f, view: v}, nil
}

// Restore replaces the handlespace with a snapshot (all or nothing: see
// snapshot.Restore).
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if _, err := snapshot.Restore(rc, f.store); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.notifyApplied()
	f.log.Info("restored handlespace from snapshot", "content-index", f.store.LastApplied())
	f.changes.publish(Change{Kind: ChangeRestore, Index: f.store.LastApplied()})
	return nil
}

type fsmSnapshot struct {
	f    *FSM
	view *store.ReadView
}

// Persist writes the snapshot from the read view opened in Snapshot.
// raft calls it from its snapshot goroutine while the FSM keeps applying.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	defer s.Release()
	if _, err := snapshot.WriteView(sink, s.view, s.f.meta); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release ends the read view. Idempotent.
func (s *fsmSnapshot) Release() { _ = s.view.Close() }
