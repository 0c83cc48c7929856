package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killChildEnv makes TestStore_KillDuringApply act as the child process:
// apply batches to the store named by its value and print each committed
// index.
const killChildEnv = "STORE_TEST_KILL_CHILD"

// killBatch is the deterministic batch of raft index i: registrations,
// updates, deregistrations and now and then a reassignment or a reset.
func killBatch(i uint64) []Op {
	rng := rand.New(rand.NewPCG(i, 77))
	var ops []Op
	switch {
	case i%97 == 0:
		return []Op{{Kind: OpReset}, reg(mkPE("after-reset", uint32(i), 1, rr()))}
	case i%13 == 0:
		ops = append(ops, Op{Kind: OpReassign, From: 1 + rng.Uint32N(3), To: []uint32{1 + rng.Uint32N(4), 1 + rng.Uint32N(4)}})
	}
	for j := 0; j < 1+rng.IntN(200); j++ {
		h := "pool-" + strconv.Itoa(rng.IntN(20))
		id := 1 + rng.Uint32N(500)
		if rng.IntN(4) == 0 {
			ops = append(ops, dereg(h, id))
		} else {
			pe := mkPE(h, id, 1+rng.Uint32N(3), rr())
			pe.Registered = int64(i)
			ops = append(ops, reg(pe))
		}
	}
	return ops
}

// Ensure that a process killed in the middle of Apply leaves a file that
// reopens to exactly the state after the last committed batch.
func TestStore_KillDuringApply(t *testing.T) {
	if path := os.Getenv(killChildEnv); path != "" {
		killChild(path)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(2026, 11))
	for round := 0; round < 8; round++ {
		path := filepath.Join(dir, fmt.Sprintf("kill-%d.db", round))
		cmd := exec.Command(os.Args[0], "-test.run=^TestStore_KillDuringApply$")
		cmd.Env = append(os.Environ(), killChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a random number of batches: either just after a
		// commit returned (the kill lands while the next batch is built
		// and applied in memory) or just before one starts (the kill
		// lands inside bbolt's commit: writes and fsync).
		killAt := uint64(20 + rng.IntN(200))
		prefix := []string{"committed ", "committing "}[round%2]
		// The child goes on applying between the line that triggers the
		// kill and the kill itself, so the bounds come from everything
		// it printed before it died (the pipe keeps it): a batch whose
		// "committed" line was printed is in the file, and no batch
		// whose "committing" line was not printed can be.
		var committed, committing uint64
		killed := false
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			for _, p := range []struct {
				prefix string
				last   *uint64
			}{{"committed ", &committed}, {"committing ", &committing}} {
				if strings.HasPrefix(line, p.prefix) {
					n, err := strconv.ParseUint(strings.TrimPrefix(line, p.prefix), 10, 64)
					if err != nil {
						t.Fatalf("round %d: child line %q: %v", round, line, err)
					}
					*p.last = n
				}
			}
			if !killed && line == prefix+strconv.FormatUint(killAt, 10) {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		_ = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: the child ended before batch %d (last committed %d)", round, killAt, committed)
		}

		s, err := Open(path, &Options{NoSync: true})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		got := s.LastApplied()
		if got < committed || got > committing {
			t.Errorf("round %d: LastApplied %d, want between %d (last batch the child reported committed) and %d (last batch it began to commit)",
				round, got, committed, committing)
		}
		// Replay the batches up to LastApplied into a memory store.
		want := OpenMemory(nil)
		for i := uint64(1); i <= got; i++ {
			if _, err := want.Apply(i, killBatch(i)); err != nil {
				t.Fatal(err)
			}
		}
		if g, w := contents(s), contents(want); !slices.Equal(g, w) {
			t.Errorf("round %d: after the kill at %d the file has %d PEs, the replay %d", round, got, len(g), len(w))
		}
		checkStore(t, s)
		t.Logf("round %d: killed at %d (child reported %d committed, %d begun), reopened at %d with %d PEs",
			round, killAt, committed, committing, got, len(contents(s)))
		s.Close()
	}
}

// killChild applies batch after batch (with fsync) and reports each.
func killChild(path string) {
	s, err := Open(path, nil)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	s.hookCommit = func(i uint64) { fmt.Println("committing", i) }
	deadline := time.Now().Add(2 * time.Minute) // never outlive a lost parent
	for i := uint64(1); time.Now().Before(deadline); i++ {
		if _, err := s.Apply(i, killBatch(i)); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("committed", i)
	}
	os.Exit(0)
}

// Ensure that ordList behaves like a sorted map under random operations.
func TestOrdList(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	var l ordList
	model := map[uint32]int32{}
	for step := 0; step < 200000; step++ {
		k := rng.Uint32N(3000)
		if step > 100000 {
			k = rng.Uint32N(300) // shrink: exercise merges and chunk removal
		}
		switch rng.IntN(3) {
		case 0, 1:
			if step > 100000 && rng.IntN(2) == 0 {
				break
			}
			it, created := l.insert(ordItem{key: k, a: int32(step)})
			_, had := model[k]
			if created == had || it.key != k {
				t.Fatalf("step %d: insert %d: created %v, had %v", step, k, created, had)
			}
			if created {
				model[k] = int32(step)
			}
		case 2:
			_, had := model[k]
			if l.delete(k) != had {
				t.Fatalf("step %d: delete %d: want %v", step, k, had)
			}
			delete(model, k)
		}
		if step%5000 == 0 || step > 199000 {
			checkOrdList(t, &l, model)
		}
	}
	for k := range model {
		l.delete(k)
	}
	if l.Len() != 0 || len(l.chunks) != 0 || l.first() != nil {
		t.Errorf("emptied list: %d items, %d chunks", l.Len(), len(l.chunks))
	}
}

func checkOrdList(t *testing.T, l *ordList, model map[uint32]int32) {
	t.Helper()
	keys := make([]uint32, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var got []uint32
	l.ascend(0, 0, func(it *ordItem) bool {
		got = append(got, it.key)
		if model[it.key] != it.a {
			t.Fatalf("key %d: payload %d, want %d", it.key, it.a, model[it.key])
		}
		return true
	})
	if !slices.Equal(got, keys) || l.Len() != len(keys) {
		t.Fatalf("list has %d keys (Len %d), model %d", len(got), l.Len(), len(keys))
	}
	for i, c := range l.chunks {
		if len(c) == 0 || len(c) > ordChunkMax || l.mins[i] != c[0].key {
			t.Fatalf("chunk %d: %d items, min %d", i, len(c), l.mins[i])
		}
	}
	for _, k := range []uint32{0, 1, 150, 2999, 5000} {
		_, in := model[k]
		if (l.get(k) != nil) != in {
			t.Fatalf("get(%d) disagrees with the model", k)
		}
		ci, i := l.seekAfter(k, true)
		var next uint32
		found := false
		l.ascend(ci, i, func(it *ordItem) bool { next, found = it.key, true; return false })
		j, _ := slices.BinarySearch(keys, k+1)
		if found != (j < len(keys)) || (found && next != keys[j]) {
			t.Fatalf("seekAfter(%d) = %d (found %v)", k, next, found)
		}
	}
}

// Ensure that the weight tree draws the slot whose cumulative range holds
// r, across block boundaries and after pops.
func TestWtree(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	var w wtree
	var model []uint32
	for step := 0; step < 3000; step++ {
		switch r := rng.IntN(10); {
		case r < 6:
			x := rng.Uint32N(5)
			w.push(x)
			model = append(model, x)
		case r < 8 && len(model) > 0:
			w.pop()
			model = model[:len(model)-1]
		case len(model) > 0:
			i := rng.IntN(len(model))
			x := rng.Uint32N(5)
			w.set(i, x)
			model[i] = x
		}
		var total uint64
		for _, x := range model {
			total += uint64(x)
		}
		if w.total() != total {
			t.Fatalf("step %d: total %d, want %d", step, w.total(), total)
		}
		if total == 0 {
			continue
		}
		r := uint64(rng.Uint64N(total))
		var acc uint64
		want := -1
		for i, x := range model {
			if r < acc+uint64(x) {
				want = i
				break
			}
			acc += uint64(x)
		}
		if got := w.find(r); got != want {
			t.Fatalf("step %d: find(%d) = %d, want %d (weights %v)", step, r, got, want, model)
		}
	}
}
