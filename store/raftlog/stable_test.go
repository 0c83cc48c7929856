package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// mustOpenRaftStore opens a fresh raft store (NoSync) in t.TempDir(). A
// cleanup checks the file's consistency and closes it.
func mustOpenRaftStore(t testing.TB) *RaftStore {
	t.Helper()
	return mustOpenRaftStoreAt(t, filepath.Join(t.TempDir(), "raft.db"), &RaftStoreOptions{NoSync: true})
}

// mustOpenRaftStoreAt opens the raft store at path and registers the same
// cleanup as mustOpenRaftStore.
func mustOpenRaftStoreAt(t testing.TB, path string, opts *RaftStoreOptions) *RaftStore {
	t.Helper()
	s, err := OpenRaftStore(path, opts)
	if err != nil {
		t.Fatalf("OpenRaftStore(%s): %v", path, err)
	}
	t.Cleanup(func() {
		raftStoreCheck(t, s)
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// raftStoreCheck verifies the invariants of an open store: bbolt's own
// consistency check passes, every key is 8 bytes, and every entry decodes.
// It does nothing if s is already closed.
func raftStoreCheck(t testing.TB, s *RaftStore) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return tx.Bucket(raftLogsBucket).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("log key %x is not 8 bytes", k)
			}
			var l raft.Log
			return decodeRaftLog(v, binary.BigEndian.Uint64(k), &l)
		})
	})
	if err != nil && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Errorf("raft store invariants: %v", err)
	}
}

// raftTestLog returns a command entry with size bytes of data derived from i.
func raftTestLog(i uint64, size int) *raft.Log {
	data := make([]byte, size)
	for j := range data {
		data[j] = byte(i) + byte(j)
	}
	return &raft.Log{Index: i, Term: i/100 + 1, Type: raft.LogCommand, Data: data}
}

// raftTestLogs returns entries first..last.
func raftTestLogs(first, last uint64, size int) []*raft.Log {
	var logs []*raft.Log
	for i := first; i <= last; i++ {
		logs = append(logs, raftTestLog(i, size))
	}
	return logs
}

// mustStoreRaftLogs stores logs in batches of 512.
func mustStoreRaftLogs(t testing.TB, s *RaftStore, logs []*raft.Log) {
	t.Helper()
	for len(logs) > 0 {
		n := min(len(logs), 512)
		if err := s.StoreLogs(logs[:n]); err != nil {
			t.Fatalf("StoreLogs: %v", err)
		}
		logs = logs[n:]
	}
}

// raftLogDiff describes how got differs from want, or returns "".
// AppendedAt is compared with time.Time.Equal; a zero want must decode as
// exactly the zero time.Time.
func raftLogDiff(got, want *raft.Log) string {
	var d []string
	if got.Index != want.Index {
		d = append(d, fmt.Sprintf("Index %d, want %d", got.Index, want.Index))
	}
	if got.Term != want.Term {
		d = append(d, fmt.Sprintf("Term %d, want %d", got.Term, want.Term))
	}
	if got.Type != want.Type {
		d = append(d, fmt.Sprintf("Type %v, want %v", got.Type, want.Type))
	}
	if !bytes.Equal(got.Data, want.Data) {
		d = append(d, fmt.Sprintf("Data %d bytes %.16x, want %d bytes %.16x", len(got.Data), got.Data, len(want.Data), want.Data))
	}
	if !bytes.Equal(got.Extensions, want.Extensions) {
		d = append(d, fmt.Sprintf("Extensions %x, want %x", got.Extensions, want.Extensions))
	}
	if want.AppendedAt.IsZero() {
		if got.AppendedAt != (time.Time{}) {
			d = append(d, fmt.Sprintf("AppendedAt %v, want the zero time", got.AppendedAt))
		}
	} else if !got.AppendedAt.Equal(want.AppendedAt) {
		d = append(d, fmt.Sprintf("AppendedAt %v, want %v", got.AppendedAt, want.AppendedAt))
	}
	return strings.Join(d, "; ")
}

// raftWantIndexes checks FirstIndex and LastIndex.
func raftWantIndexes(t testing.TB, s *RaftStore, first, last uint64) {
	t.Helper()
	if got, err := s.FirstIndex(); err != nil || got != first {
		t.Errorf("FirstIndex() = %d, %v; want %d, nil", got, err, first)
	}
	if got, err := s.LastIndex(); err != nil || got != last {
		t.Errorf("LastIndex() = %d, %v; want %d, nil", got, err, last)
	}
}

// raftWantPresent checks that GetLog finds exactly the indexes in [lo, hi]
// for which present returns true, with the content of raftTestLog(i, size).
func raftWantPresent(t testing.TB, s *RaftStore, lo, hi uint64, size int, present func(uint64) bool) {
	t.Helper()
	bad := 0
	for i := lo; i <= hi && bad < 5; i++ {
		var got raft.Log
		err := s.GetLog(i, &got)
		switch {
		case present(i) && err != nil:
			t.Errorf("GetLog(%d) = %v, want the entry", i, err)
			bad++
		case present(i):
			if d := raftLogDiff(&got, raftTestLog(i, size)); d != "" {
				t.Errorf("GetLog(%d): %s", i, d)
				bad++
			}
		case err != raft.ErrLogNotFound: // raft compares with ==
			t.Errorf("GetLog(%d) = %v, want raft.ErrLogNotFound", i, err)
			bad++
		}
	}
}

func TestRaftStore_Empty(t *testing.T) {
	s := mustOpenRaftStore(t)
	raftWantIndexes(t, s, 0, 0)
	for _, idx := range []uint64{0, 1, math.MaxUint64} {
		var l raft.Log
		if err := s.GetLog(idx, &l); err != raft.ErrLogNotFound {
			t.Errorf("GetLog(%d) = %v, want raft.ErrLogNotFound", idx, err)
		}
	}
	if err := s.DeleteRange(1, 100); err != nil {
		t.Errorf("DeleteRange on an empty log: %v", err)
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Errorf("StoreLogs(nil): %v", err)
	}
	// raft's own reading of an empty store: no term, no logs.
	has, err := raft.HasExistingState(s, s, raft.NewInmemSnapshotStore())
	if err != nil || has {
		t.Errorf("raft.HasExistingState = %v, %v; want false, nil", has, err)
	}
}

func TestRaftStore_LogRoundTrip(t *testing.T) {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	tests := []struct {
		name string
		log  raft.Log
	}{
		{"every field", raft.Log{
			Index: 1, Term: 2, Type: raft.LogCommand,
			Data: []byte("hello"), Extensions: []byte{0, 1, 2, 0xff},
			AppendedAt: time.Date(2026, 11, 3, 14, 15, 16, 123456789, time.UTC),
		}},
		{"empty data and extensions", raft.Log{Index: 2, Term: 1, Type: raft.LogNoop}},
		{"zero-length non-nil slices", raft.Log{Index: 3, Term: 1, Type: raft.LogBarrier, Data: []byte{}, Extensions: []byte{}}},
		{"extensions only", raft.Log{Index: 4, Term: 9, Type: raft.LogConfiguration, Extensions: []byte("ext")}},
		{"max index and term", raft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: raft.LogCommand, Data: []byte{1}}},
		{"time before 1970 in another zone", raft.Log{
			Index: 6, Term: 1, Data: []byte("x"),
			AppendedAt: time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.FixedZone("X", -5*3600)),
		}},
		{"time.Now with monotonic reading", raft.Log{Index: 7, Term: 3, Data: []byte("now"), AppendedAt: time.Now()}},
		{"unknown future log type", raft.Log{Index: 8, Term: 3, Type: raft.LogType(200), Data: []byte("?")}},
		{"deprecated peer types", raft.Log{Index: 9, Term: 3, Type: raft.LogRemovePeerDeprecated, Data: []byte("peer")}},
		{"1 MiB of data", raft.Log{Index: 10, Term: 4, Type: raft.LogCommand, Data: big, Extensions: big[:300]}},
	}
	for _, storeOne := range []bool{true, false} {
		s := mustOpenRaftStore(t)
		var batch []*raft.Log
		for _, tt := range tests {
			l := tt.log
			if storeOne {
				if err := s.StoreLog(&l); err != nil {
					t.Fatalf("StoreLog(%s): %v", tt.name, err)
				}
			} else {
				batch = append(batch, &l)
			}
		}
		if !storeOne {
			if err := s.StoreLogs(batch); err != nil {
				t.Fatalf("StoreLogs: %v", err)
			}
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/StoreLog=%v", tt.name, storeOne), func(t *testing.T) {
				// Start from a dirty struct: GetLog must set every field.
				got := raft.Log{Index: 99, Term: 99, Type: 99, Data: []byte("old"), Extensions: []byte("old"), AppendedAt: time.Now()}
				if err := s.GetLog(tt.log.Index, &got); err != nil {
					t.Fatalf("GetLog(%d): %v", tt.log.Index, err)
				}
				if d := raftLogDiff(&got, &tt.log); d != "" {
					t.Errorf("GetLog(%d): %s", tt.log.Index, d)
				}
			})
		}
		raftWantIndexes(t, s, 1, math.MaxUint64)
	}
}

// Ensure that returned slices are copies and that stored entries do not
// alias the caller's slices.
func TestRaftStore_LogCopies(t *testing.T) {
	s := mustOpenRaftStore(t)
	in := &raft.Log{Index: 1, Term: 1, Data: []byte("data"), Extensions: []byte("ext")}
	if err := s.StoreLog(in); err != nil {
		t.Fatal(err)
	}
	in.Data[0], in.Extensions[0] = 'X', 'X'
	var a raft.Log
	if err := s.GetLog(1, &a); err != nil {
		t.Fatal(err)
	}
	if string(a.Data) != "data" || string(a.Extensions) != "ext" {
		t.Fatalf("after changing the caller's slices: got %q %q, want \"data\" \"ext\"", a.Data, a.Extensions)
	}
	// Writes that reuse bbolt pages must not show through earlier results.
	a.Data[0] = 'Y'
	mustStoreRaftLogs(t, s, raftTestLogs(2, 3000, 64))
	if err := s.DeleteRange(2, 2000); err != nil {
		t.Fatal(err)
	}
	var b raft.Log
	if err := s.GetLog(1, &b); err != nil {
		t.Fatal(err)
	}
	if string(a.Data) != "Yata" || string(a.Extensions) != "ext" || string(b.Data) != "data" {
		t.Errorf("got %q %q and %q, want \"Yata\" \"ext\" and \"data\"", a.Data, a.Extensions, b.Data)
	}
}

func TestRaftStore_StoreLogs_Overwrite(t *testing.T) {
	s := mustOpenRaftStore(t)
	mustStoreRaftLogs(t, s, raftTestLogs(1, 10, 32))
	// raft rewrites a conflicting suffix: same indexes, new term.
	repl := raftTestLogs(6, 12, 8)
	for _, l := range repl {
		l.Term = 77
	}
	if err := s.StoreLogs(repl); err != nil {
		t.Fatal(err)
	}
	raftWantIndexes(t, s, 1, 12)
	for i := uint64(1); i <= 12; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := raftTestLog(i, 32)
		if i >= 6 {
			want = repl[i-6]
		}
		if d := raftLogDiff(&got, want); d != "" {
			t.Errorf("GetLog(%d): %s", i, d)
		}
	}
}

// Ensure that a batch that fails part-way leaves the log as it was: none
// of its entries are stored and none of the entries it overwrote change.
func TestRaftStore_StoreLogs_Atomic(t *testing.T) {
	tests := []struct {
		name  string
		batch func() []*raft.Log
	}{
		{"nil entry after 300 good ones", func() []*raft.Log {
			b := raftTestLogs(11, 310, 256)
			return append(b, nil, raftTestLog(312, 1))
		}},
		{"index 0 in the middle", func() []*raft.Log {
			b := raftTestLogs(11, 100, 256)
			b = append(b, &raft.Log{Index: 0, Term: 1})
			return append(b, raftTestLogs(101, 200, 256)...)
		}},
		{"overwrite then fail", func() []*raft.Log {
			b := raftTestLogs(5, 20, 999) // rewrites 5..10 with other data
			return append(b, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustOpenRaftStore(t)
			mustStoreRaftLogs(t, s, raftTestLogs(1, 10, 16))
			err := s.StoreLogs(tt.batch())
			if err == nil {
				t.Fatal("StoreLogs succeeded, want an error")
			}
			t.Logf("error: %v", err)
			raftWantIndexes(t, s, 1, 10)
			raftWantPresent(t, s, 1, 400, 16, func(i uint64) bool { return i <= 10 })
		})
	}
}

func TestRaftStore_StoreLogs_LargeBatch(t *testing.T) {
	s := mustOpenRaftStore(t)
	const n = 20000
	if err := s.StoreLogs(raftTestLogs(1, n, 100)); err != nil {
		t.Fatal(err)
	}
	raftWantIndexes(t, s, 1, n)
	raftWantPresent(t, s, 1, n+1, 100, func(i uint64) bool { return i <= n })
}

// Ensure that the store accepts gaps (see the RaftStore doc on
// raft.MonotonicLogStore) and that FirstIndex/LastIndex are the smallest
// and largest index.
func TestRaftStore_Gaps(t *testing.T) {
	s := mustOpenRaftStore(t)
	logs := append(raftTestLogs(5, 10, 8), raftTestLogs(1000, 1002, 8)...)
	mustStoreRaftLogs(t, s, logs)
	raftWantIndexes(t, s, 5, 1002)
	raftWantPresent(t, s, 1, 1010, 8, func(i uint64) bool { return (i >= 5 && i <= 10) || (i >= 1000 && i <= 1002) })
	if err := s.DeleteRange(5, 999); err != nil {
		t.Fatal(err)
	}
	raftWantIndexes(t, s, 1000, 1002)
}

func TestRaftStore_DeleteRange(t *testing.T) {
	// 3000 entries of 256 bytes span a few hundred leaf pages, so ranges
	// cross page boundaries.
	const n, size = 3000, 256
	tests := []struct {
		name        string
		min, max    uint64
		first, last uint64 // after the delete; 0, 0 = empty
	}{
		{"head: log compaction", 1, 2500, 2501, n},
		{"head from below the first index", 0, 1000, 1001, n},
		{"tail: conflict truncation", 2001, n, 1, 2000},
		{"tail beyond the last index", 2001, math.MaxUint64, 1, 2000},
		{"middle", 100, 2900, 1, n},
		{"single entry", 1500, 1500, 1, n},
		{"first entry", 1, 1, 2, n},
		{"last entry", n, n, 1, n - 1},
		{"whole range exactly", 1, n, 0, 0},
		{"whole range and more", 0, math.MaxUint64, 0, 0},
		{"nothing: min > max", 2000, 1000, 1, n},
		{"nothing: above the log", n + 1, n + 1000, 1, n},
		{"nothing: below the log", 0, 0, 1, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustOpenRaftStore(t)
			mustStoreRaftLogs(t, s, raftTestLogs(1, n, size))
			if err := s.DeleteRange(tt.min, tt.max); err != nil {
				t.Fatalf("DeleteRange(%d, %d): %v", tt.min, tt.max, err)
			}
			raftWantIndexes(t, s, tt.first, tt.last)
			deleted := func(i uint64) bool { return tt.min <= tt.max && i >= tt.min && i <= tt.max }
			raftWantPresent(t, s, 0, n+1, size, func(i uint64) bool { return i >= 1 && i <= n && !deleted(i) })

			// The log keeps working: append after the last entry.
			next := max(tt.last, 1) + 1
			if tt.last == 0 {
				next = n + 1 // after a reset raft appends where it left off
			}
			if err := s.StoreLogs(raftTestLogs(next, next+9, size)); err != nil {
				t.Fatalf("StoreLogs after DeleteRange: %v", err)
			}
			wantFirst := tt.first
			if tt.last == 0 {
				wantFirst = next
			}
			raftWantIndexes(t, s, wantFirst, next+9)
		})
	}
}

// Ensure that repeated compaction and appends, the way raft uses the log,
// keep the indexes right.
func TestRaftStore_DeleteRange_Rolling(t *testing.T) {
	s := mustOpenRaftStore(t)
	var next uint64 = 1
	for round := 0; round < 20; round++ {
		mustStoreRaftLogs(t, s, raftTestLogs(next, next+499, 128))
		next += 500
		// Keep the last 300 entries.
		if err := s.DeleteRange(1, next-301); err != nil {
			t.Fatal(err)
		}
		raftWantIndexes(t, s, next-300, next-1)
	}
	raftWantPresent(t, s, next-310, next, 128, func(i uint64) bool { return i >= next-300 && i < next })
}

func TestRaftStore_Stable(t *testing.T) {
	s := mustOpenRaftStore(t)
	tests := []struct {
		name string
		key  string
		val  []byte
	}{
		{"raft vote candidate", "LastVoteCand", []byte("node-1")},
		{"binary value", "bin", []byte{0, 0xff, 0, 1}},
		{"empty value", "empty", []byte{}},
		{"nil value", "nil", nil},
		{"large value", "large", bytes.Repeat([]byte("v"), 100000)},
		{"binary key", "\x00\x01", []byte("k")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Set([]byte(tt.key), tt.val); err != nil {
				t.Fatalf("Set: %v", err)
			}
			got, err := s.Get([]byte(tt.key))
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got, tt.val) || got == nil {
				t.Errorf("Get = %q (nil: %v), want %q as a non-nil slice", got, got == nil, tt.val)
			}
		})
	}

	t.Run("overwrite", func(t *testing.T) {
		for _, v := range []string{"a", "longer value", "b"} {
			if err := s.Set([]byte("k"), []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Get([]byte("k")); err != nil || string(got) != "b" {
			t.Errorf("Get = %q, %v; want \"b\", nil", got, err)
		}
	})

	t.Run("Get returns a copy", func(t *testing.T) {
		if err := s.Set([]byte("c"), []byte("abc")); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Get([]byte("c"))
		got[0] = 'X'
		if again, _ := s.Get([]byte("c")); string(again) != "abc" {
			t.Errorf("Get after changing the first result = %q, want \"abc\"", again)
		}
	})

	t.Run("uint64", func(t *testing.T) {
		for _, v := range []uint64{0, 1, 255, 1 << 40, math.MaxUint64} {
			if err := s.SetUint64([]byte("CurrentTerm"), v); err != nil {
				t.Fatal(err)
			}
			if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != v {
				t.Errorf("GetUint64 = %d, %v; want %d, nil", got, err, v)
			}
		}
	})

	t.Run("missing key", func(t *testing.T) {
		// "k" exists, so a cursor Seek for these lands next to it.
		for _, key := range []string{"missing", "j", "k\x00", "zzz"} {
			got, err := s.Get([]byte(key))
			if err == nil || err.Error() != "not found" || !errors.Is(err, ErrRaftKeyNotFound) || len(got) != 0 {
				t.Errorf("Get(%q) = %q, %v; want empty, an error reading exactly \"not found\"", key, got, err)
			}
			n, err := s.GetUint64([]byte(key))
			if err == nil || err.Error() != "not found" || n != 0 {
				t.Errorf("GetUint64(%q) = %d, %v; want 0, an error reading exactly \"not found\"", key, n, err)
			}
		}
	})

	t.Run("GetUint64 of a value that is not 8 bytes", func(t *testing.T) {
		if err := s.Set([]byte("short"), []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.GetUint64([]byte("short")); err == nil || errors.Is(err, ErrRaftKeyNotFound) {
			t.Errorf("GetUint64 = %d, %v; want a length error", n, err)
		}
	})

	t.Run("empty key", func(t *testing.T) {
		if err := s.Set(nil, []byte("v")); err == nil {
			t.Error("Set with an empty key succeeded, want an error")
		}
	})
}

// Ensure that logs and stable values survive Close and reopen (with the
// default, synced options), and that Close is idempotent.
func TestRaftStore_Persistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := OpenRaftStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustStoreRaftLogs(t, s, raftTestLogs(1, 1000, 200))
	if err := s.DeleteRange(1, 400); err != nil {
		t.Fatal(err)
	}
	special := &raft.Log{Index: 1001, Term: 9, Type: raft.LogConfiguration, Data: []byte("cfg"),
		Extensions: []byte("ext"), AppendedAt: time.Unix(1700000000, 42)}
	if err := s.StoreLog(special); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 9); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}

	// Every method fails cleanly on a closed store.
	var l raft.Log
	if _, err := s.FirstIndex(); err == nil {
		t.Error("FirstIndex after Close succeeded")
	}
	if err := s.GetLog(500, &l); err == nil || err == raft.ErrLogNotFound {
		t.Errorf("GetLog after Close = %v, want a closed-database error", err)
	}
	if err := s.StoreLog(raftTestLog(2000, 1)); err == nil {
		t.Error("StoreLog after Close succeeded")
	}
	if _, err := s.Get([]byte("CurrentTerm")); err == nil || errors.Is(err, ErrRaftKeyNotFound) {
		t.Errorf("Get after Close = %v, want a closed-database error", err)
	}

	s2 := mustOpenRaftStoreAt(t, path, nil)
	raftWantIndexes(t, s2, 401, 1001)
	raftWantPresent(t, s2, 1, 1000, 200, func(i uint64) bool { return i > 400 })
	if err := s2.GetLog(1001, &l); err != nil {
		t.Fatal(err)
	}
	if d := raftLogDiff(&l, special); d != "" {
		t.Errorf("GetLog(1001) after reopen: %s", d)
	}
	if v, err := s2.GetUint64([]byte("CurrentTerm")); err != nil || v != 9 {
		t.Errorf("GetUint64(CurrentTerm) after reopen = %d, %v; want 9", v, err)
	}
	if v, err := s2.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-2" {
		t.Errorf("Get(LastVoteCand) after reopen = %q, %v; want \"node-2\"", v, err)
	}
	has, err := raft.HasExistingState(s2, s2, raft.NewInmemSnapshotStore())
	if err != nil || !has {
		t.Errorf("raft.HasExistingState = %v, %v; want true, nil", has, err)
	}
}

func TestRaftStore_Open_Options(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		opts *RaftStoreOptions
		mode os.FileMode
	}{
		{"nil options", nil, 0o600},
		{"zero options", &RaftStoreOptions{}, 0o600},
		{"file mode", &RaftStoreOptions{FileMode: 0o640, NoSync: true}, 0o640},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("raft%d.db", i))
			s := mustOpenRaftStoreAt(t, path, tt.opts)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.mode {
				t.Errorf("file mode %v, want %v", got, tt.mode)
			}
			if err := s.StoreLog(raftTestLog(1, 1)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Ensure that an existing empty file (as left by a crash during creation)
// becomes a new store.
func TestRaftStore_Open_EmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpenRaftStoreAt(t, path, &RaftStoreOptions{NoSync: true})
	raftWantIndexes(t, s, 0, 0)
}

// raftCorruptFile describes a file that OpenRaftStore must refuse.
type raftCorruptFile struct {
	name    string
	make    func(t *testing.T, path string) // creates the file at path
	wantErr error
}

// raftCorruptFiles lists the refused files. The bbolt-based ones are built
// with OpenRaftStore or raw bbolt and then damaged.
func raftCorruptFiles() []raftCorruptFile {
	rng := rand.New(rand.NewPCG(1, 2))
	randomBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	write := func(t *testing.T, path string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// goodStore builds a valid raft store with 1000 entries and returns
	// its bytes.
	goodStore := func(t *testing.T) []byte {
		t.Helper()
		path := filepath.Join(t.TempDir(), "good.db")
		s, err := OpenRaftStore(path, &RaftStoreOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		mustStoreRaftLogs(t, s, raftTestLogs(1, 1000, 256))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// rawBolt creates a bbolt file and runs fn in a write transaction.
	rawBolt := func(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
		t.Helper()
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// raftLayout creates the raft store's buckets, then runs fn.
	raftLayout := func(fn func(tx *bolt.Tx) error) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			for _, name := range raftBuckets {
				if _, err := tx.CreateBucket([]byte(name)); err != nil {
					return err
				}
			}
			return fn(tx)
		}
	}
	version := func(v uint64) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			return tx.Bucket(raftMetaBucket).Put(raftFormatKey, binary.BigEndian.AppendUint64(nil, v))
		}
	}

	return []raftCorruptFile{
		{"plain text file", func(t *testing.T, p string) {
			write(t, p, []byte("# registrar config\nasap = 127.0.0.1:3863\n"))
		}, ErrRaftStoreNotBbolt},
		{"64 KiB of random bytes", func(t *testing.T, p string) { write(t, p, randomBytes(64<<10)) }, ErrRaftStoreNotBbolt},
		{"one byte", func(t *testing.T, p string) { write(t, p, []byte{0}) }, ErrRaftStoreNotBbolt},
		{"bbolt file truncated to 100 bytes", func(t *testing.T, p string) {
			write(t, p, goodStore(t)[:100])
		}, ErrRaftStoreNotBbolt},
		{"bbolt file truncated inside the second meta page", func(t *testing.T, p string) {
			write(t, p, goodStore(t)[:5000])
		}, nil}, // bbolt: "file size too small" or our length check
		{"bbolt file truncated after the meta pages", func(t *testing.T, p string) {
			write(t, p, goodStore(t)[:3*4096])
		}, ErrRaftStoreCorrupt},
		{"bbolt file truncated to half", func(t *testing.T, p string) {
			b := goodStore(t)
			write(t, p, b[:len(b)/2])
		}, ErrRaftStoreCorrupt},
		{"both meta pages overwritten", func(t *testing.T, p string) {
			b := goodStore(t)
			copy(b, randomBytes(2*4096))
			write(t, p, b)
		}, ErrRaftStoreNotBbolt},
		{"random pages behind valid meta pages", func(t *testing.T, p string) {
			b := goodStore(t)
			copy(b[2*4096:], randomBytes(len(b)-2*4096))
			write(t, p, b)
		}, nil}, // whatever bbolt makes of it, it must be an error, not a crash
		{"bbolt file of another application", func(t *testing.T, p string) {
			rawBolt(t, p, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("pools"))
				if err != nil {
					return err
				}
				return b.Put([]byte("echo"), []byte("pe"))
			})
		}, ErrRaftStoreLayout},
		{"raft buckets plus an extra bucket", func(t *testing.T, p string) {
			rawBolt(t, p, raftLayout(func(tx *bolt.Tx) error {
				if err := version(1)(tx); err != nil {
					return err
				}
				_, err := tx.CreateBucket([]byte("zzz"))
				return err
			}))
		}, ErrRaftStoreLayout},
		{"raft buckets without a format version", func(t *testing.T, p string) {
			rawBolt(t, p, raftLayout(func(*bolt.Tx) error { return nil }))
		}, ErrRaftStoreLayout},
		{"format version 0", func(t *testing.T, p string) { rawBolt(t, p, raftLayout(version(0))) }, ErrRaftStoreLayout},
		{"newer format version", func(t *testing.T, p string) {
			rawBolt(t, p, raftLayout(version(RaftStoreFormatVersion+1)))
		}, ErrRaftStoreVersion},
	}
}

// Ensure that a file that is not a raft store is refused with an error
// naming the file, and is left exactly as it was.
func TestRaftStore_Open_Corrupt(t *testing.T) {
	for _, tt := range raftCorruptFiles() {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "raft.db")
			tt.make(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			s, err := OpenRaftStore(path, &RaftStoreOptions{Timeout: 100 * time.Millisecond})
			if err == nil {
				_ = s.Close()
				t.Fatal("OpenRaftStore succeeded, want an error")
			}
			t.Logf("error: %v", err)
			if want := "open raft store " + path + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrRaftStoreLocked) {
				t.Errorf("error %q: the file was left locked", err)
			}

			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("file changed: %d bytes before, %d after", len(before), len(after))
			}
			// The refused file's lock is released: bbolt can open it
			// (read-only, so that nothing is written) without waiting.
			if db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 100 * time.Millisecond}); errors.Is(err, berrors.ErrTimeout) {
				t.Errorf("the file is still locked after the failed open")
			} else if err == nil {
				_ = db.Close()
			}
		})
	}
}

func TestRaftStore_Open_Directory(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenRaftStore(dir, nil)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("OpenRaftStore(directory) = %v, want an error naming %s", err, dir)
	}
}

// Ensure that a second open of a store that is in use fails within the
// timeout instead of hanging, and succeeds once the first is closed.
func TestRaftStore_Open_Locked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	first, err := OpenRaftStore(path, &RaftStoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.StoreLog(raftTestLog(1, 10)); err != nil {
		t.Fatal(err)
	}
	for _, timeout := range []time.Duration{-1, 300 * time.Millisecond} {
		start := time.Now()
		s, err := OpenRaftStore(path, &RaftStoreOptions{Timeout: timeout})
		elapsed := time.Since(start)
		if err == nil {
			_ = s.Close()
			t.Fatalf("second OpenRaftStore succeeded, want ErrRaftStoreLocked")
		}
		if !errors.Is(err, ErrRaftStoreLocked) || !strings.Contains(err.Error(), path) {
			t.Errorf("second OpenRaftStore = %v, want ErrRaftStoreLocked naming %s", err, path)
		}
		if elapsed > max(timeout, 0)+2*time.Second {
			t.Errorf("second OpenRaftStore with timeout %v took %v", timeout, elapsed)
		}
		t.Logf("timeout %v: failed after %v: %v", timeout, elapsed.Round(time.Millisecond), err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	s := mustOpenRaftStoreAt(t, path, nil)
	raftWantIndexes(t, s, 1, 1)
}

// raftLockHolderEnv makes the test binary, run as a child process by
// TestRaftStore_Open_LockedByOtherProcess, hold the store named by its
// value until its standard input closes.
const raftLockHolderEnv = "RAFTSTORE_TEST_LOCK_HOLDER"

// Ensure that a store held by another process is reported as locked within
// the timeout.
func TestRaftStore_Open_LockedByOtherProcess(t *testing.T) {
	if path := os.Getenv(raftLockHolderEnv); path != "" {
		s, err := OpenRaftStore(path, &RaftStoreOptions{NoSync: true})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = s.Close()
		return
	}

	path := filepath.Join(t.TempDir(), "raft.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRaftStore_Open_LockedByOtherProcess$")
	cmd.Env = append(os.Environ(), raftLockHolderEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); line == "locked" || strings.HasPrefix(line, "error:") {
				ready <- line
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		close(ready)
	}()
	select {
	case line := <-ready:
		if line != "locked" {
			t.Fatalf("child process: %q", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child process did not open the store")
	}

	start := time.Now()
	s, err := OpenRaftStore(path, &RaftStoreOptions{Timeout: 300 * time.Millisecond})
	elapsed := time.Since(start)
	if err == nil {
		_ = s.Close()
		t.Fatal("OpenRaftStore succeeded while another process holds the store")
	}
	if !errors.Is(err, ErrRaftStoreLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("OpenRaftStore = %v, want ErrRaftStoreLocked naming %s", err, path)
	}
	if elapsed > 3*time.Second {
		t.Errorf("OpenRaftStore took %v with a 300ms timeout", elapsed)
	}
	t.Logf("failed after %v: %v", elapsed.Round(time.Millisecond), err)

	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child process: %v", err)
	}
	s2 := mustOpenRaftStoreAt(t, path, nil)
	raftWantIndexes(t, s2, 0, 0)
}

// Ensure that a damaged entry is reported by GetLog with its index, and
// does not stop the rest of the log from being read.
func TestRaftStore_GetLog_Corrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := OpenRaftStore(path, &RaftStoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustStoreRaftLogs(t, s, raftTestLogs(1, 10, 32))
	damaged := map[uint64][]byte{
		3: {raftLogEncodingV1, 0, 0, 3},     // truncated after the index
		7: []byte("garbage that is no log"), // wrong version byte
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for idx, v := range damaged {
			if err := tx.Bucket(raftLogsBucket).Put(binary.BigEndian.AppendUint64(nil, idx), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 10; i++ {
		var l raft.Log
		err := s.GetLog(i, &l)
		if _, bad := damaged[i]; !bad {
			if err != nil {
				t.Errorf("GetLog(%d): %v", i, err)
			}
			continue
		}
		t.Logf("GetLog(%d): %v", i, err)
		if !errors.Is(err, ErrRaftLogCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("raft log index %d:", i)) {
			t.Errorf("GetLog(%d) = %v, want ErrRaftLogCorrupt naming index %d", i, err, i)
		}
	}
}

func TestDecodeRaftLog(t *testing.T) {
	full := &raft.Log{Index: 300, Term: 70000, Type: raft.LogCommand, Data: []byte("data"),
		Extensions: []byte("ext"), AppendedAt: time.Unix(1700000000, 999)}
	enc := appendRaftLog(nil, full)

	t.Run("round trip", func(t *testing.T) {
		var l raft.Log
		if err := decodeRaftLog(enc, 300, &l); err != nil {
			t.Fatal(err)
		}
		if d := raftLogDiff(&l, full); d != "" {
			t.Error(d)
		}
	})
	t.Run("round trip, owned buffer", func(t *testing.T) {
		var l raft.Log
		if err := decodeOwnedRaftLog(bytes.Clone(enc), 300, &l); err != nil {
			t.Fatal(err)
		}
		if d := raftLogDiff(&l, full); d != "" {
			t.Error(d)
		}
		if cap(l.Data) != len(l.Data) {
			t.Errorf("Data has capacity %d past its %d bytes: an append would overwrite Extensions", cap(l.Data), len(l.Data))
		}
	})
	t.Run("every truncation", func(t *testing.T) {
		for n := 0; n < len(enc); n++ {
			var l raft.Log
			err := decodeRaftLog(enc[:n], 300, &l)
			if !errors.Is(err, ErrRaftLogCorrupt) || !strings.Contains(err.Error(), "raft log index 300") {
				t.Errorf("%d of %d bytes: err = %v, want ErrRaftLogCorrupt naming index 300", n, len(enc), err)
			}
			if l.Index != 0 || l.Data != nil {
				t.Errorf("%d of %d bytes: the failed decode changed the log: %+v", n, len(enc), l)
			}
		}
	})

	bad := func(mutate func(b []byte) []byte) []byte { return mutate(bytes.Clone(enc)) }
	tests := []struct {
		name  string
		value []byte
		index uint64
		want  string
	}{
		{"trailing byte", append(bytes.Clone(enc), 0), 300, "trailing"},
		{"unknown version", bad(func(b []byte) []byte { b[0] = 2; return b }), 300, "version 2"},
		{"unknown flag", bad(func(b []byte) []byte { b[2] |= 0x80; return b }), 300, "flags"},
		{"index differs from key", enc, 301, "says index 300"},
		{"varint overflow", []byte{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 1, "overflows"},
		{"data length beyond the value", []byte{1, 0, 0, 1, 1, 200, 'x'}, 1, "truncated Data"},
		{"nanoseconds out of range", append([]byte{1, 0, 1, 1, 1, 0, 0, 2}, binary.AppendUvarint(nil, uint64(time.Second))...), 1, "nanoseconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l raft.Log
			err := decodeRaftLog(tt.value, tt.index, &l)
			if !errors.Is(err, ErrRaftLogCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrRaftLogCorrupt mentioning %q", err, tt.want)
			}
		})
	}
}

// FuzzDecodeRaftLog checks that decoding arbitrary bytes never panics, and
// that whatever decodes re-encodes to the same bytes.
func FuzzDecodeRaftLog(f *testing.F) {
	f.Add(appendRaftLog(nil, &raft.Log{Index: 1}), uint64(1))
	f.Add(appendRaftLog(nil, &raft.Log{Index: 5, Term: 2, Type: raft.LogConfiguration, Data: []byte("d"),
		Extensions: []byte("e"), AppendedAt: time.Unix(-5, 7)}), uint64(5))
	f.Add([]byte("garbage"), uint64(3))
	f.Fuzz(func(t *testing.T, b []byte, index uint64) {
		var l raft.Log
		if err := decodeRaftLog(b, index, &l); err != nil {
			if !errors.Is(err, ErrRaftLogCorrupt) {
				t.Fatalf("error %v is not ErrRaftLogCorrupt", err)
			}
			return
		}
		if again := appendRaftLog(nil, &l); !bytes.Equal(again, b) {
			// Varints have more than one encoding; a canonical
			// re-encoding must at least decode the same.
			var l2 raft.Log
			if err := decodeRaftLog(again, index, &l2); err != nil {
				t.Fatalf("re-encoding does not decode: %v", err)
			}
			if d := raftLogDiff(&l2, &l); d != "" {
				t.Fatalf("re-encoding decodes differently: %s", d)
			}
		}
	})
}

// Ensure that concurrent appends, reads and compaction, as raft does them
// from its goroutines, are safe (run with -race).
func TestRaftStore_Concurrent(t *testing.T) {
	s := mustOpenRaftStore(t)
	mustStoreRaftLogs(t, s, raftTestLogs(1, 100, 64))
	const rounds = 50
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	wg.Go(func() { // leader: append batches, compact the head
		for r := uint64(0); r < rounds; r++ {
			first := 101 + r*20
			if err := s.StoreLogs(raftTestLogs(first, first+19, 64)); err != nil {
				errs <- err
				return
			}
			if r%10 == 9 {
				if err := s.DeleteRange(1, first-100); err != nil {
					errs <- err
					return
				}
			}
		}
	})
	for g := 0; g < 4; g++ {
		wg.Go(func() { // replication: read what is there
			for r := 0; r < rounds*4; r++ {
				first, err1 := s.FirstIndex()
				last, err2 := s.LastIndex()
				if err := errors.Join(err1, err2); err != nil {
					errs <- err
					return
				}
				var l raft.Log
				if err := s.GetLog(last, &l); err != nil && err != raft.ErrLogNotFound {
					errs <- err
					return
				}
				if err := s.GetLog(first, &l); err != nil && err != raft.ErrLogNotFound {
					errs <- err
					return
				}
				if err := s.SetUint64([]byte("CurrentTerm"), uint64(r)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The last compaction, in round rounds-1, deleted up to 1+(rounds-1)*20.
	raftWantIndexes(t, s, 2+(rounds-1)*20, 100+rounds*20)
}

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

// raftTestLogWriter sends raft's log output to t.Log, so it shows only for
// failing tests.
type raftTestLogWriter struct{ t testing.TB }

// Write logs p as one line.
func (w raftTestLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
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

// startRaftOnStore starts a single-node raft that uses s as its log and
// stable store, with an in-memory transport and snapshot store.
func startRaftOnStore(t *testing.T, s *RaftStore, fsm raft.FSM) *raft.Raft {
	t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = "node1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotThreshold = math.MaxUint64 / 2 // keep every entry in the log
	conf.SnapshotInterval = time.Hour
	conf.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: raftTestLogWriter{t}})
	_, trans := raft.NewInmemTransport("node1")
	r, err := raft.NewRaft(conf, fsm, s, s, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatalf("raft.NewRaft: %v", err)
	}
	return r
}

// Ensure that hashicorp/raft runs on RaftStore: a single node bootstraps,
// commits 1000 commands, shuts down, and after a restart on the same file
// recovers its last index, term and configuration and applies every
// command again.
func TestRaftStore_Raft(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	const n = 1000

	// First life.
	s := mustOpenRaftStoreAt(t, path, nil) // synced, as in production
	fsm := &raftTestFSM{}
	r := startRaftOnStore(t, s, fsm)
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
	raftWantIndexes(t, s, 1, lastIndex)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Second life: same file, fresh FSM.
	s2 := mustOpenRaftStoreAt(t, path, nil)
	var commands int
	for i := uint64(1); i <= lastIndex; i++ {
		var l raft.Log
		if err := s2.GetLog(i, &l); err != nil {
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
	r2 := startRaftOnStore(t, s2, fsm2)
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
	if got, _ := s2.LastIndex(); got <= lastIndex+1 {
		t.Errorf("store LastIndex %d after a new command, want > %d", got, lastIndex+1)
	}
}
