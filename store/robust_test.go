package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The robustness test (etcd's failpoint robustness tests, scaled down): a
// raft node in miniature, the WAL on a file layer that injects failures
// and loses unsynced bytes on a crash, and the handlespace store with
// failpoints at each of its write sites. Each entry is appended to the
// log (one StoreLogs), applied to the store the way the FSM does (the
// same batch again until the store takes it) and only then
// acknowledged, as a registration is answered after its commit. Now and
// then the node crashes and restarts; every restart checks that
//
//   - every acknowledged entry is in the log, with the content acknowledged;
//   - the store's file is an exact prefix of the log: its content is the
//     replay of entries 1..its applied index;
//   - after the replay of the rest of the log the store holds exactly the
//     replay of every entry, so every acknowledged registration is there.

// robustBatch is the batch an entry's data describes: registrations and
// deregistrations in ten pools, now and then a reassignment.
func robustBatch(data []byte) []Op {
	rng := rand.New(rand.NewPCG(binary.BigEndian.Uint64(data), binary.BigEndian.Uint64(data[8:])))
	var ops []Op
	if rng.IntN(17) == 0 {
		ops = append(ops, Op{Kind: OpReassign, From: 1 + rng.Uint32N(3), To: []uint32{1 + rng.Uint32N(4)}})
	}
	for j := 0; j < 1+rng.IntN(24); j++ {
		h := "pool-" + strconv.Itoa(rng.IntN(10))
		id := 1 + rng.Uint32N(300)
		if rng.IntN(4) == 0 {
			ops = append(ops, dereg(h, id))
		} else {
			ops = append(ops, reg(mkPE(h, id, 1+rng.Uint32N(3), rr())))
		}
	}
	return ops
}

type robustNode struct {
	t      *testing.T
	rng    *rand.Rand
	path   string // the store's file
	mfs    *memFS
	walF   *faultSchedule
	storeF *faultSchedule
	group  bool
	seg    int64
	seed   uint64

	w *WAL
	s *Store
	// log is the content of every entry the log holds for sure (each
	// acknowledged one, and those found in the log after a crash).
	log   map[uint64][]byte
	acked uint64
	tries uint64

	ackedRegs, crashes, walFailures int
}

// replay applies entries 1..n of the log to a memory store.
func (r *robustNode) replay(n uint64) *Store {
	m := OpenMemory(nil)
	for i := uint64(1); i <= n; i++ {
		if _, err := m.Apply(i, robustBatch(r.log[i])); err != nil {
			r.t.Fatal(err)
		}
	}
	return m
}

// start opens the log and the store (no faults while starting) and checks
// them against what was acknowledged.
func (r *robustNode) start() {
	t := r.t
	r.mfs.fail = nil
	var err error
	r.w, err = OpenWAL("/wal", &WALOptions{fs: r.mfs, SegmentSize: r.seg})
	if err != nil {
		t.Fatalf("after crash %d: open the log: %v (a power cut leaves at most a torn tail)", r.crashes, err)
	}
	delay := time.Duration(0)
	if r.group {
		delay = time.Millisecond
	}
	r.s, err = Open(r.path, &Options{NoSync: true, CommitDelay: delay, InjectFault: r.storeF.next})
	if err != nil {
		t.Fatalf("after crash %d: open the store: %v", r.crashes, err)
	}
	first, _ := r.w.FirstIndex()
	last, _ := r.w.LastIndex()
	fileApplied := r.s.LastApplied()
	if last < r.acked {
		t.Fatalf("after crash %d (seed %d): the log ends at %d, but %d entries were acknowledged", r.crashes, r.seed, last, r.acked)
	}
	if first > fileApplied+1 {
		t.Fatalf("after crash %d: the log starts at %d, the store's file is at %d: a hole", r.crashes, first, fileApplied)
	}
	if fileApplied > last {
		t.Fatalf("after crash %d: the store's file is at index %d, past the log's end %d", r.crashes, fileApplied, last)
	}
	for i := max(first, 1); i <= last; i++ {
		var l raft.Log
		if err := r.w.GetLog(i, &l); err != nil {
			t.Fatalf("after crash %d: GetLog(%d): %v", r.crashes, i, err)
		}
		if i <= r.acked && !bytes.Equal(l.Data, r.log[i]) {
			t.Fatalf("after crash %d: entry %d differs from the acknowledged one", r.crashes, i)
		}
		if i > r.acked {
			r.log[i] = slices.Clone(l.Data) // appended before the crash, never acknowledged
		}
	}
	if got, want := contents(r.s), contents(r.replay(fileApplied)); !slices.Equal(got, want) {
		t.Fatalf("after crash %d: the store's file at index %d holds %d PEs, the replay of entries 1..%d %d: not a prefix of the log",
			r.crashes, fileApplied, len(got), fileApplied, len(want))
	}
	r.mfs.fail = r.walF.next
	for i := fileApplied + 1; i <= last; i++ { // raft replays what the file lacks
		r.apply(i)
	}
	r.acked = last
	if got, want := contents(r.s), contents(r.replay(last)); !slices.Equal(got, want) {
		t.Fatalf("after crash %d and the replay up to %d: the store holds %d PEs, the log's replay %d", r.crashes, last, len(got), len(want))
	}
}

// apply gives entry i to the store as the FSM does: the same batch again
// until the store takes it.
func (r *robustNode) apply(i uint64) {
	for try := 0; ; try++ {
		_, err := r.s.Apply(i, robustBatch(r.log[i]))
		if err == nil {
			return
		}
		if !errors.Is(err, ErrStorageFault) || try > 10000 {
			r.t.Fatalf("apply %d (try %d): %v", i, try, err)
		}
	}
}

// step appends, applies and acknowledges one entry, or fails to append it.
func (r *robustNode) step() {
	i := r.acked + 1
	r.tries++
	data := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, i), r.tries)
	if err := r.w.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: data}}); err != nil {
		if !errors.Is(err, ErrStorageFault) || r.w.Fault() == nil {
			r.t.Fatalf("append %d: %v (want a storage fault)", i, err)
		}
		r.walFailures++
		return // not acknowledged: raft tries again with a new entry
	}
	r.log[i] = data
	r.apply(i)
	r.acked = i
	for _, op := range robustBatch(data) {
		if op.Kind == OpRegister {
			r.ackedRegs++
		}
	}
}

// compact removes a prefix of the log the store's file holds, as raft
// does after a snapshot.
func (r *robustNode) compact() {
	if r.s.Flush() != nil || r.s.Fault() != nil {
		return
	}
	first, _ := r.w.FirstIndex()
	if k := r.s.LastApplied(); k > first+8 {
		_ = r.w.DeleteRange(first, k-8) // may fail: the next start checks the log
	}
}

// crash loses what a power cut loses and restarts.
func (r *robustNode) crash() {
	r.mfs.crash()
	r.s.abandon()
	r.crashes++
	r.start()
}

// Ensure that with ENOSPC, EIO, short writes and failed fsyncs injected at
// random into every write of the log and of the handlespace file, and
// crashes that lose unsynced bytes, no acknowledged entry is ever lost and
// the handlespace file is always an exact prefix of the log.
func TestRobustness_FaultsAndCrashes(t *testing.T) {
	runs, steps := 24, 300
	if testing.Short() {
		runs = 6
	}
	var acked, regs, crashes, walFaults, storeFaults int
	for run := 0; run < runs; run++ {
		seed := uint64(1000 + run)
		rng := rand.New(rand.NewPCG(seed, 1))
		r := &robustNode{t: t, rng: rng, path: filepath.Join(t.TempDir(), "hs.db"), mfs: newMemFS(seed),
			walF: newFaultSchedule(seed), storeF: newFaultSchedule(seed + 1<<32), group: run%2 == 0,
			seg: int64(512 + rng.IntN(2048)), log: map[uint64][]byte{}, seed: seed}
		r.mfs.short = run%3 != 0
		r.start()
		for k := 0; k < steps; k++ {
			r.step()
			switch x := rng.IntN(100); {
			case x < 3:
				r.crash()
			case x < 6:
				r.compact()
			}
		}
		r.crash()
		r.s.Close()
		acked += int(r.acked)
		regs += r.ackedRegs
		crashes += r.crashes
		walFaults += r.walF.injected
		storeFaults += r.storeF.injected
	}
	if walFaults == 0 || storeFaults == 0 {
		t.Fatalf("injected %d log and %d store faults: the schedules injected nothing", walFaults, storeFaults)
	}
	t.Logf("%d runs: %d entries (%d registrations) acknowledged, %d crashes, %d log and %d store faults injected, 0 lost",
		runs, acked, regs, crashes, walFaults, storeFaults)
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
	if err := w.StoreLogs([]*raft.Log{walLog(11), walLog(12)}); !errors.Is(err, ErrStorageFault) || !errors.Is(err, syscall.ENOSPC) {
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
