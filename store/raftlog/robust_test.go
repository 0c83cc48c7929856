package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/rserpool-go/registrar/store"
	"github.com/rserpool-go/registrar/store/internal/faulttest"
)

// The raft log's half of the robustness test (etcd's failpoint robustness
// tests, scaled down; the handlespace file's half is in package store):
// the WAL on a file layer that injects failures (ENOSPC, EIO, short
// writes, failed syncs) into every write and loses unsynced bytes on a
// crash. Each entry is appended (one StoreLogs) and acknowledged only if
// the append succeeded, as raft acknowledges a commit; now and then a
// prefix the node no longer needs is removed, as raft compacts after a
// snapshot. Every restart checks that
//
//   - every acknowledged entry is in the log, with the content acknowledged;
//   - nothing after the last compaction point is missing (no hole);
//   - a failed append left nothing behind: the next index is acked+1.
type walNode struct {
	t    *testing.T
	mfs  *memFS
	sch  *faulttest.Schedule
	seg  int64
	seed uint64

	w     *WAL
	log   map[uint64][]byte // every entry the log holds for sure
	acked uint64
	keep  uint64 // the first index the node still needs (compaction point + 1)
	tries uint64

	crashes, failures int
}

// start opens the log (no faults while opening) and checks it against
// what was acknowledged.
func (r *walNode) start() {
	t := r.t
	r.mfs.fail = nil
	var err error
	r.w, err = OpenWAL("/wal", &WALOptions{fs: r.mfs, SegmentSize: r.seg})
	if err != nil {
		t.Fatalf("after crash %d (seed %d): open the log: %v (a power cut leaves at most a torn tail)", r.crashes, r.seed, err)
	}
	first, _ := r.w.FirstIndex()
	last, _ := r.w.LastIndex()
	if last < r.acked {
		t.Fatalf("after crash %d (seed %d): the log ends at %d, but %d entries were acknowledged", r.crashes, r.seed, last, r.acked)
	}
	if r.acked > 0 && first > r.keep {
		t.Fatalf("after crash %d (seed %d): the log starts at %d, but entries from %d on are still needed: a hole", r.crashes, r.seed, first, r.keep)
	}
	for i := max(first, 1); i <= last; i++ {
		var l raft.Log
		if err := r.w.GetLog(i, &l); err != nil {
			t.Fatalf("after crash %d: GetLog(%d): %v", r.crashes, i, err)
		}
		if i <= r.acked && r.log[i] != nil && !bytes.Equal(l.Data, r.log[i]) {
			t.Fatalf("after crash %d: entry %d differs from the acknowledged one", r.crashes, i)
		}
		if i > r.acked {
			r.log[i] = slices.Clone(l.Data) // appended before the crash, never acknowledged
		}
	}
	r.acked = last
	r.mfs.fail = r.sch.Next
}

// step appends and acknowledges one entry, or fails to append it.
func (r *walNode) step() {
	i := r.acked + 1
	r.tries++
	data := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, i), r.tries)
	if err := r.w.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: data}}); err != nil {
		if !errors.Is(err, store.ErrStorageFault) || r.w.Fault() == nil {
			r.t.Fatalf("append %d: %v (want a storage fault)", i, err)
		}
		r.failures++
		return // not acknowledged: raft tries again with a new entry
	}
	r.log[i] = data
	r.acked = i
}

// compact removes a prefix the node no longer needs.
func (r *walNode) compact(rng *rand.Rand) {
	first, _ := r.w.FirstIndex()
	if r.acked <= first+8 {
		return
	}
	upTo := first + uint64(rng.IntN(int(r.acked-first-8)))
	if r.w.DeleteRange(first, upTo) == nil { // may fail: the next start checks the log
		r.keep = max(r.keep, upTo+1)
	}
}

// crash loses what a power cut loses and restarts.
func (r *walNode) crash() {
	r.mfs.crash()
	r.crashes++
	r.start()
}

// Ensure that with ENOSPC, EIO, short writes and failed fsyncs injected at
// random into every write of the log, and crashes that lose unsynced
// bytes, no acknowledged entry is ever lost and compaction leaves no hole.
func TestRobustness_LogFaultsAndCrashes(t *testing.T) {
	runs, steps := 24, 300
	if testing.Short() {
		runs = 6
	}
	var acked, crashes, faults int
	for run := 0; run < runs; run++ {
		seed := uint64(1000 + run)
		rng := rand.New(rand.NewPCG(seed, 1))
		r := &walNode{t: t, mfs: newMemFS(seed), sch: faulttest.NewSchedule(seed),
			seg: int64(512 + rng.IntN(2048)), log: map[uint64][]byte{}, seed: seed, keep: 1}
		r.mfs.short = run%3 != 0
		r.start()
		for k := 0; k < steps; k++ {
			r.step()
			switch x := rng.IntN(100); {
			case x < 3:
				r.crash()
			case x < 6:
				r.compact(rng)
			}
		}
		r.crash()
		r.w.Close()
		acked += int(r.acked)
		crashes += r.crashes
		faults += r.sch.Injected()
	}
	if faults == 0 {
		t.Fatal("the schedule injected no log faults")
	}
	t.Logf("%d runs: %d entries acknowledged, %d crashes, %d log faults injected, 0 lost", runs, acked, crashes, faults)
}

// Ensure the crash layer really loses what is not synced, so the
// robustness test tests fsync ordering: without fdatasync (NoSync) a crash
// loses acknowledged entries, with it none, and a segment whose directory
// entry was never synced disappears.
func TestWAL_CrashLosesUnsyncedWrites(t *testing.T) {
	for _, noSync := range []bool{true, false} {
		m := newMemFS(7)
		w, err := OpenWAL("/wal", &WALOptions{fs: m, NoSync: noSync, SegmentSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		walAppend(t, w, 1, 300, 4)
		m.crash()
		w, err = OpenWAL("/wal", &WALOptions{fs: m, NoSync: noSync, SegmentSize: 4096})
		if err != nil {
			t.Fatalf("NoSync %v: open after the crash: %v", noSync, err)
		}
		last, _ := w.LastIndex()
		switch {
		case noSync && last == 300:
			t.Errorf("NoSync: all 300 entries survived a crash: the layer does not drop unsynced writes")
		case !noSync && last != 300:
			t.Errorf("synced appends: %d of 300 entries survived the crash", last)
		}
		if !noSync {
			walCheck(t, w, 1, 300)
		}
	}
}

// Ensure a failed append leaves nothing behind, also when the segment
// cannot be cut back at once (the next append cuts it first), and that
// the fault is reported until an append succeeds.
func TestWAL_FailedAppendLeavesNothing(t *testing.T) {
	m := newMemFS(9)
	m.short = true
	w, err := OpenWAL("/wal", &WALOptions{fs: m})
	if err != nil {
		t.Fatal(err)
	}
	walAppend(t, w, 1, 10, 5)
	failing := map[string]bool{}
	m.fail = func(op string) error {
		if failing[op] {
			return syscall.ENOSPC
		}
		return nil
	}
	failing["write"], failing["truncate"] = true, true
	if err := w.StoreLogs([]*raft.Log{walLog(11), walLog(12)}); !errors.Is(err, store.ErrStorageFault) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want a storage fault with ENOSPC", err)
	}
	if w.Fault() == nil {
		t.Fatal("Fault() = nil after a failed append")
	}
	failing["write"] = false
	if err := w.StoreLogs([]*raft.Log{walLog(11)}); err == nil {
		t.Fatal("an append succeeded although the torn bytes of the failed one could not be cut off")
	}
	failing["truncate"] = false
	walAppend(t, w, 11, 11, 1)
	if w.Fault() != nil {
		t.Fatalf("Fault() = %v after a successful append", w.Fault())
	}
	w, err = OpenWAL("/wal", &WALOptions{fs: m})
	if err != nil {
		t.Fatal(err)
	}
	walCheck(t, w, 1, 11)
}
