package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func walLog(i uint64) *raft.Log {
	return &raft.Log{Index: i, Term: 1 + i/100, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry-%d-%s", i, bytes.Repeat([]byte("x"), int(i%50))))}
}

func mustOpenWAL(t *testing.T, dir string, seg int64) *WAL {
	t.Helper()
	w, err := OpenWAL(dir, &WALOptions{NoSync: true, SegmentSize: seg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func walAppend(t *testing.T, w *WAL, from, to uint64, batch int) {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, walLog(i))
		if len(logs) == batch || i == to {
			if err := w.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			logs = nil
		}
	}
}

func walCheck(t *testing.T, w *WAL, first, last uint64) {
	t.Helper()
	f, _ := w.FirstIndex()
	l, _ := w.LastIndex()
	if f != first || l != last {
		t.Fatalf("range [%d, %d], want [%d, %d]", f, l, first, last)
	}
	for i := first; i <= last && last != 0; i++ {
		var got raft.Log
		if err := w.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := walLog(i)
		if got.Index != i || got.Term != want.Term || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("GetLog(%d) = %+v", i, got)
		}
	}
	var x raft.Log
	for _, i := range []uint64{first - 1, last + 1} {
		if i == 0 {
			continue
		}
		if err := w.GetLog(i, &x); !errors.Is(err, raft.ErrLogNotFound) {
			t.Errorf("GetLog(%d) outside the range: %v", i, err)
		}
	}
}

// Ensure entries round-trip, across segments and a reopen.
func TestWAL_RoundTripSegments(t *testing.T) {
	dir := t.TempDir()
	w := mustOpenWAL(t, dir, 2048)
	walAppend(t, w, 1, 500, 7)
	walCheck(t, w, 1, 500)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(segs) < 5 {
		t.Fatalf("%d segments, want several (rotation at 2 KiB)", len(segs))
	}
	w.Close()
	w = mustOpenWAL(t, dir, 2048)
	walCheck(t, w, 1, 500)
	walAppend(t, w, 501, 520, 20)
	walCheck(t, w, 1, 520)
	if err := w.StoreLogs([]*raft.Log{walLog(600)}); err == nil {
		t.Error("a gap was accepted")
	}
}

// Ensure prefix and suffix deletion, and their persistence.
func TestWAL_DeleteRange(t *testing.T) {
	dir := t.TempDir()
	w := mustOpenWAL(t, dir, 2048)
	walAppend(t, w, 1, 400, 10)
	if err := w.DeleteRange(1, 250); err != nil { // compaction
		t.Fatal(err)
	}
	walCheck(t, w, 251, 400)
	if err := w.DeleteRange(380, 400); err != nil { // conflict on a follower
		t.Fatal(err)
	}
	walCheck(t, w, 251, 379)
	walAppend(t, w, 380, 420, 5)
	walCheck(t, w, 251, 420)
	w.Close()
	w = mustOpenWAL(t, dir, 2048)
	walCheck(t, w, 251, 420)
	if err := w.DeleteRange(300, 310); err == nil {
		t.Error("deleting from the middle was accepted")
	}
	if err := w.DeleteRange(0, 1000); err != nil { // after a snapshot install
		t.Fatal(err)
	}
	walCheck(t, w, 0, 0)
	walAppend(t, w, 1001, 1010, 3) // the log restarts after the snapshot
	w.Close()
	w = mustOpenWAL(t, dir, 2048)
	walCheck(t, w, 1001, 1010)
}

// Ensure a failure to write the first-index file fails the compaction
// rather than being dropped (the write error was once shadowed).
func TestWAL_FirstIndexWriteError(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	dir := t.TempDir()
	w := mustOpenWAL(t, dir, 2048)
	defer w.Close()
	walAppend(t, w, 1, 100, 10)
	// Writes to /dev/full fail with ENOSPC.
	if err := os.Symlink("/dev/full", filepath.Join(dir, walFirstFile+".tmp")); err != nil {
		t.Fatal(err)
	}
	err := w.DeleteRange(1, 50)
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("compaction with an unwritable first-index file: got %v, want ENOSPC", err)
	}
}

// Ensure a closed WAL says so in its own words (it once said the
// handlespace store was closed).
func TestWAL_Closed(t *testing.T) {
	w := mustOpenWAL(t, t.TempDir(), 2048)
	walAppend(t, w, 1, 3, 3)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	for name, err := range map[string]error{
		"GetLog":      w.GetLog(1, &l),
		"StoreLogs":   w.StoreLogs([]*raft.Log{{Index: 4, Term: 1}}),
		"DeleteRange": w.DeleteRange(1, 1),
	} {
		if !errors.Is(err, ErrWALClosed) || err.Error() != "raft log is closed" {
			t.Errorf("%s after Close: got %v, want ErrWALClosed", name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Ensure a write torn by a crash at the end is cut off at open, and damage
// elsewhere is refused with the file named.
func TestWAL_TornTailAndCorruption(t *testing.T) {
	dir := t.TempDir()
	w := mustOpenWAL(t, dir, 1<<20)
	walAppend(t, w, 1, 50, 10)
	w.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	seg := segs[len(segs)-1]
	fi, _ := os.Stat(seg)
	for _, cut := range []int64{3, 9, 20} { // part of the last record is missing
		if err := os.Truncate(seg, fi.Size()-cut); err != nil {
			t.Fatal(err)
		}
		w := mustOpenWAL(t, dir, 1<<20)
		walCheck(t, w, 1, 49)
		walAppend(t, w, 50, 50, 1) // the cut-off entry is written again
		walCheck(t, w, 1, 50)
		w.Close()
		fi, _ = os.Stat(seg)
	}
	f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 0, 9, 1, 2, 3, 4, 5}) // garbage after the last record
	f.Close()
	w = mustOpenWAL(t, dir, 1<<20)
	walCheck(t, w, 1, 50)
	w.Close()

	// Corruption inside a segment that is not the last: refused.
	dir2 := t.TempDir()
	w = mustOpenWAL(t, dir2, 1024)
	walAppend(t, w, 1, 100, 5)
	w.Close()
	segs, _ = filepath.Glob(filepath.Join(dir2, "*.wal"))
	sort.Strings(segs)
	b, _ := os.ReadFile(segs[0])
	b[len(b)/2] ^= 0xff
	os.WriteFile(segs[0], b, 0o600)
	before, _ := os.ReadFile(segs[0])
	if _, err := OpenWAL(dir2, nil); !errors.Is(err, ErrWALCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(filepath.Base(segs[0]))) {
		t.Errorf("corrupt first segment: got %v, want ErrWALCorrupt naming %s", err, filepath.Base(segs[0]))
	}
	after, _ := os.ReadFile(segs[0])
	if !bytes.Equal(before, after) {
		t.Error("the corrupt segment was changed")
	}
}

// walFSM is a trivial FSM that counts entries.
type walFSM struct{ n int }

func (f *walFSM) Apply(*raft.Log) interface{}         { f.n++; return nil }
func (f *walFSM) Snapshot() (raft.FSMSnapshot, error) { return walSnap{}, nil }
func (f *walFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type walSnap struct{}

func (walSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (walSnap) Release()                          {}

// Ensure raft runs on the WAL (with Stable as stable store): commands,
// a snapshot with log compaction, a restart that recovers the log.
func TestWAL_Raft(t *testing.T) {
	dir := t.TempDir()
	start := func() (*raft.Raft, *WAL, *Stable, *walFSM) {
		w, err := OpenWAL(filepath.Join(dir, "wal"), &WALOptions{NoSync: true, SegmentSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		st, err := OpenStable(filepath.Join(dir, "raft.db"), &StableOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		_, trans := raft.NewInmemTransport("n1")
		cfg := raft.DefaultConfig()
		cfg.LocalID = "n1"
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
		cfg.CommitTimeout = 5 * time.Millisecond
		cfg.TrailingLogs = 10
		cfg.Logger = nil
		fsm := &walFSM{}
		r, err := raft.NewRaft(cfg, fsm, w, st, snaps, trans)
		if err != nil {
			t.Fatal(err)
		}
		return r, w, st, fsm
	}
	r, w, st, _ := start()
	r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: "n1"}}})
	deadline := time.Now().Add(5 * time.Second)
	for r.State() != raft.Leader && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for i := 0; i < 300; i++ {
		if err := r.Apply([]byte("x"), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := r.Apply([]byte("y"), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := w.FirstIndex()
	last, _ := w.LastIndex()
	if first <= 1 {
		t.Errorf("first index %d: the snapshot did not compact the log", first)
	}
	r.Shutdown().Error()
	w.Close()
	st.Close()
	r, w, st, _ = start()
	defer func() { r.Shutdown().Error(); w.Close(); st.Close() }()
	if got := r.LastIndex(); got != last {
		t.Errorf("after restart raft's last index %d, want %d", got, last)
	}
	if f, _ := w.FirstIndex(); f != first {
		t.Errorf("after restart first index %d, want %d", f, first)
	}
}

// Ensure readers run alongside appends (which take the readers' lock only
// to publish what they wrote), segment rotation and compaction, and
// always see whole entries in [FirstIndex, LastIndex].
func TestWAL_ConcurrentReaders(t *testing.T) {
	w := mustOpenWAL(t, t.TempDir(), 2048)
	walAppend(t, w, 1, 10, 10)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var l raft.Log
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				w.mu.RLock() // one consistent range for the check
				first, last := w.first, w.last
				w.mu.RUnlock()
				i := first + uint64(n)%(last-first+1)
				err := w.GetLog(i, &l)
				if errors.Is(err, raft.ErrLogNotFound) {
					continue // compacted meanwhile
				}
				if err != nil || l.Index != i || !bytes.Equal(l.Data, walLog(i).Data) {
					t.Errorf("GetLog(%d) = %d %q, %v", i, l.Index, l.Data, err)
					return
				}
			}
		}()
	}
	for next := uint64(11); next <= 2000; next += 10 {
		walAppend(t, w, next, next+9, 10)
		if next%500 == 1 {
			if err := w.DeleteRange(1, next-100); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	walCheck(t, w, 1402, 2000)
}

// BenchmarkWAL_GetLogDuringAppend reads entries (as raft's replication
// does) while another goroutine appends batches of 64 entries of 256 bytes
// with fdatasync (as raft's leader does).
func BenchmarkWAL_GetLogDuringAppend(b *testing.B) {
	w, err := OpenWAL(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	batch := make([]*raft.Log, 64)
	for i := range batch {
		batch[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: make([]byte, 256)}
	}
	var next uint64 = 1
	store := func() error {
		for _, l := range batch {
			l.Index = next
			next++
		}
		return w.StoreLogs(batch)
	}
	for i := 0; i < 100; i++ {
		if err := store(); err != nil {
			b.Fatal(err)
		}
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := store(); err != nil {
				done <- err
				return
			}
		}
	}()
	var l raft.Log
	var i uint64
	for b.Loop() {
		if err := w.GetLog(i%6400+1, &l); err != nil {
			b.Fatal(err)
		}
		i++
	}
	close(stop)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
