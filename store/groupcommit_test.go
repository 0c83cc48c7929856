package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

const groupKillChildEnv = "STORE_TEST_GROUP_KILL_CHILD"

// Ensure that with group commit a process killed at any moment leaves a
// file that reopens to exactly the state after some applied batch (a
// consistent prefix the raft log can be replayed on), never a mix.
func TestStore_KillDuringGroupCommit(t *testing.T) {
	if path := os.Getenv(groupKillChildEnv); path != "" {
		groupKillChild(path)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	for round := 0; round < 6; round++ {
		path := filepath.Join(dir, fmt.Sprintf("group-%d.db", round))
		cmd := exec.Command(os.Args[0], "-test.run=^TestStore_KillDuringGroupCommit$")
		cmd.Env = append(os.Environ(), groupKillChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAt := uint64(30 + 37*round)
		var last uint64
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if n, err := strconv.ParseUint(strings.TrimPrefix(sc.Text(), "applied "), 10, 64); err == nil {
				last = n
				if n == killAt {
					cmd.Process.Signal(syscall.SIGKILL)
					break
				}
			}
		}
		_ = cmd.Wait()
		s, err := Open(path, &Options{NoSync: true})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		got := s.LastApplied()
		if got > last {
			t.Fatalf("round %d: file at index %d, but only %d batches were applied", round, got, last)
		}
		want := OpenMemory(nil)
		for i := uint64(1); i <= got; i++ {
			if _, err := want.Apply(i, killBatch(i)); err != nil {
				t.Fatal(err)
			}
		}
		if g, w := contents(s), contents(want); !slices.Equal(g, w) {
			t.Errorf("round %d: the file at index %d holds %d PEs, the replay of batches 1..%d %d", round, got, len(g), got, len(w))
		}
		checkStore(t, s)
		t.Logf("round %d: killed after applying %d, the file reopened at %d", round, last, got)
		s.Close()
	}
}

// groupKillChild applies batches with group commit (2 ms) and reports
// each applied (not yet durable) index.
func groupKillChild(path string) {
	s, err := Open(path, &Options{CommitDelay: 2 * time.Millisecond})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for i := uint64(1); time.Now().Before(deadline); i++ {
		if _, err := s.Apply(i, killBatch(i)); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("applied", i)
	}
	os.Exit(0)
}

// Ensure Abort leaves the file as a killed process does: what group commit
// queued is lost, what was committed stays, with its applied index, and
// the store is closed.
func TestStore_AbortLosesQueuedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hs.db")
	s, err := Open(path, &Options{NoSync: true, CommitDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 3; i++ {
		if _, err := s.Apply(i, killBatch(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	committed := contents(s)
	if _, err := s.Apply(4, killBatch(4)); err != nil {
		t.Fatal(err)
	}
	s.Abort()
	if _, err := s.Apply(5, killBatch(5)); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Abort: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after Abort: %v", err)
	}
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.LastApplied(); got != 3 || !slices.Equal(contents(s), committed) {
		t.Errorf("after Abort and reopen: index %d, %d PEs; want the committed index 3 with its %d PEs", got, len(contents(s)), len(committed))
	}
}

// Ensure queued writes reach the file on Close, View and ReplaceAll, and
// that readers of the file see everything applied.
func TestStore_GroupCommitFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hs.db")
	s, err := Open(path, &Options{NoSync: true, CommitDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 5; i++ {
		if _, err := s.Apply(i, killBatch(i)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	if err := s.View(func(v *ReadView) error {
		if got := v.AppliedIndex(); got != 5 {
			t.Errorf("View sees applied index %d, want 5 (queued writes flushed first)", got)
		}
		return v.ForEach(func(PE) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if _, c := s.Counts(); c != n {
		t.Errorf("file holds %d PEs, memory %d", n, c)
	}
	if _, err := s.Apply(6, killBatch(6)); err != nil {
		t.Fatal(err)
	}
	want := contents(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.LastApplied() != 6 || !slices.Equal(contents(s), want) {
		t.Errorf("after Close and reopen: index %d, %d PEs; want 6, %d", s.LastApplied(), len(contents(s)), len(want))
	}
}

// Ensure readers of the file (View, BeginView, the commit timer) may run
// while ReplaceAll swaps the file under group commit: Flush once read the
// store's bbolt handle without a lock, racing with the swap (-race).
func TestStore_GroupCommitReplaceAllConcurrentReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hs.db")
	s, err := Open(path, &Options{NoSync: true, CommitDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := s.View(func(*ReadView) error { return nil })
				if err == nil {
					var v *ReadView
					if v, err = s.BeginView(); err == nil {
						err = v.Close()
					}
				}
				if err != nil && !errors.Is(err, ErrNoFile) && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
					t.Errorf("reader during ReplaceAll: %v", err)
					return
				}
			}
		}()
	}
	for i := uint64(1); i <= 20; i++ {
		if _, err := s.Apply(2*i-1, killBatch(i)); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceAll(2*i, func(put func(PE) error) error {
			return put(mkPE("replaced", uint32(i), 1, rr()))
		}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if got := s.LastApplied(); got != 40 {
		t.Errorf("LastApplied = %d, want 40", got)
	}
}

// snapshotFile opens a copy of the store's file as it is now (the store
// keeps its lock on the original), as a crash at this moment would leave
// it.
func snapshotFile(t *testing.T, s *Store) *Store {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "copy.db")
	copyFile(t, s.Path(), cp)
	c, err := Open(cp, &Options{NoSync: true})
	if err != nil {
		t.Fatalf("open a copy of %s: %v", s.Path(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// replayed is a memory store holding killBatch 1..n.
func replayed(t *testing.T, n uint64) *Store {
	t.Helper()
	m := OpenMemory(nil)
	for i := uint64(1); i <= n; i++ {
		if _, err := m.Apply(i, killBatch(i)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// Ensure a failed deferred commit is never covered by a later one: the
// queued writes of the failed commit once left the queue, and the next
// timer flush committed newer writes under a higher applied index, so a
// restart skipped the hole (88 acknowledged PEs lost on a full disk). Now
// the file's applied index always describes its content, and once the
// disk works again the file is rewritten to hold everything.
func TestStore_GroupCommitFailureNeverCovered(t *testing.T) {
	var fail atomic.Int32 // commits left to fail
	s, err := Open(filepath.Join(t.TempDir(), "hs.db"), &Options{NoSync: true, CommitDelay: time.Hour,
		InjectFault: func(site string) error {
			if (site == "commit" || site == "rewrite") && fail.Add(-1) >= 0 {
				return syscall.ENOSPC
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := uint64(1); i <= 5; i++ {
		if _, err := s.Apply(i, killBatch(i)); err != nil {
			t.Fatal(err)
		}
	}
	fail.Store(2) // the commit and the first rewrite
	if err := s.Flush(); !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrStorageFault) {
		t.Fatalf("Flush with a full disk = %v, want a storage fault with ENOSPC", err)
	}
	if s.Fault() == nil {
		t.Fatal("Fault() = nil after a failed commit")
	}
	for i := uint64(6); i <= 10; i++ {
		if _, err := s.Apply(i, killBatch(i)); err != nil {
			t.Fatalf("Apply %d during the fault: %v (group commit keeps applying to memory)", i, err)
		}
	}
	_ = s.Flush()
	c := snapshotFile(t, s)
	if got, want := contents(c), contents(replayed(t, c.LastApplied())); !slices.Equal(got, want) {
		t.Fatalf("during the fault the file is at index %d with %d PEs, but batches 1..%d give %d: a later commit covered the failed one",
			c.LastApplied(), len(got), c.LastApplied(), len(want))
	}
	if err := waitFault(s, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	c = snapshotFile(t, s)
	if c.LastApplied() != 10 || !slices.Equal(contents(c), contents(s)) {
		t.Errorf("after recovery the file is at index %d with %d PEs, memory at 10 with %d", c.LastApplied(), len(contents(c)), len(contents(s)))
	}
	if got, want := contents(s), contents(replayed(t, 10)); !slices.Equal(got, want) {
		t.Errorf("memory holds %d PEs, batches 1..10 give %d", len(got), len(want))
	}
	// Normal group commits go on after the fault.
	if _, err := s.Apply(11, killBatch(11)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if c := snapshotFile(t, s); c.LastApplied() != 11 || !slices.Equal(contents(c), contents(s)) {
		t.Errorf("after the next group commit the file is at index %d, want 11 with memory's content", c.LastApplied())
	}
}

// waitFault waits until the store's fault is over.
func waitFault(s *Store, d time.Duration) error {
	deadline := time.Now().Add(d)
	for s.Fault() != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("the store is still faulted after %v: %v", d, s.Fault())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
