package store

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/store/internal/faulttest"
)

// The handlespace file's half of the robustness test (etcd's failpoint
// robustness tests, scaled down; the raft log's half is in package
// raftlog): a raft node in miniature whose log is the test's memory (it
// never loses an acknowledged entry: package raftlog's test holds the WAL
// to that) and the handlespace store with failpoints at each of its write
// sites. Each entry is applied to the store the way the FSM does (the
// same batch again until the store takes it) and only then acknowledged,
// as a registration is answered after its commit. Now and then the node
// crashes (the store is dropped as a killed process drops it) and
// restarts; every restart checks that
//
//   - the store's file is an exact prefix of the log: its content is the
//     replay of entries 1..its applied index, which is not past the log;
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
	path   string // the store's file
	storeF *faulttest.Schedule
	group  bool
	seed   uint64

	s *Store
	// log is the content of every acknowledged entry.
	log   map[uint64][]byte
	acked uint64

	ackedRegs, crashes int
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

// start opens the store (no faults while opening) and checks it against
// the log, then replays what the file lacks, as raft does.
func (r *robustNode) start() {
	t := r.t
	delay := time.Duration(0)
	if r.group {
		delay = time.Millisecond
	}
	var err error
	r.s, err = Open(r.path, &Options{NoSync: true, CommitDelay: delay, InjectFault: r.storeF.Next})
	if err != nil {
		t.Fatalf("after crash %d (seed %d): open the store: %v", r.crashes, r.seed, err)
	}
	fileApplied := r.s.LastApplied()
	if fileApplied > r.acked {
		t.Fatalf("after crash %d: the store's file is at index %d, past the log's end %d", r.crashes, fileApplied, r.acked)
	}
	if got, want := contents(r.s), contents(r.replay(fileApplied)); !slices.Equal(got, want) {
		t.Fatalf("after crash %d (seed %d): the store's file at index %d holds %d PEs, the replay of entries 1..%d %d: not a prefix of the log",
			r.crashes, r.seed, fileApplied, len(got), fileApplied, len(want))
	}
	for i := fileApplied + 1; i <= r.acked; i++ { // raft replays what the file lacks
		r.apply(i)
	}
	if got, want := contents(r.s), contents(r.replay(r.acked)); !slices.Equal(got, want) {
		t.Fatalf("after crash %d and the replay up to %d: the store holds %d PEs, the log's replay %d", r.crashes, r.acked, len(got), len(want))
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

// step commits, applies and acknowledges one entry.
func (r *robustNode) step(try uint64) {
	i := r.acked + 1
	data := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, i), try)
	r.log[i] = data
	r.apply(i)
	r.acked = i
	for _, op := range robustBatch(data) {
		if op.Kind == OpRegister {
			r.ackedRegs++
		}
	}
}

// crash drops the store as a killed process does and restarts.
func (r *robustNode) crash() {
	r.s.Abort()
	r.crashes++
	r.start()
}

// Ensure that with ENOSPC and EIO injected at random into every write of
// the handlespace file (commits, rewrites, renames, directory syncs), with
// and without group commit, and kills at random points, the file is
// always an exact prefix of the log and no acknowledged registration is
// lost once the log is replayed.
func TestRobustness_FaultsAndCrashes(t *testing.T) {
	runs, steps := 24, 300
	if testing.Short() {
		runs = 6
	}
	var acked, regs, crashes, storeFaults int
	for run := 0; run < runs; run++ {
		seed := uint64(1000 + run)
		rng := rand.New(rand.NewPCG(seed, 1))
		r := &robustNode{t: t, path: filepath.Join(t.TempDir(), "hs.db"), storeF: faulttest.NewSchedule(seed + 1<<32),
			group: run%2 == 0, log: map[uint64][]byte{}, seed: seed}
		r.start()
		for k := 0; k < steps; k++ {
			r.step(uint64(k))
			if rng.IntN(100) < 3 {
				r.crash()
			}
		}
		r.crash()
		r.s.Close()
		acked += int(r.acked)
		regs += r.ackedRegs
		crashes += r.crashes
		storeFaults += r.storeF.Injected()
	}
	if storeFaults == 0 {
		t.Fatal("the schedule injected no store faults")
	}
	t.Logf("%d runs: %d entries (%d registrations) acknowledged, %d crashes, %d store faults injected, 0 lost",
		runs, acked, regs, crashes, storeFaults)
}
