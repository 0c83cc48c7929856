package store

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkRaftStore_StoreLogs appends batches of 64 entries of 256 bytes,
// the shape of raft's MaxAppendEntries batches, and reports entries/s.
func BenchmarkRaftStore_StoreLogs(b *testing.B) {
	const batchSize, entrySize = 64, 256
	for _, bc := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(bc.name, func(b *testing.B) {
			s := mustOpenRaftStoreAt(b, filepath.Join(b.TempDir(), "raft.db"), &RaftStoreOptions{NoSync: bc.noSync})
			data := make([]byte, entrySize)
			batch := make([]*raft.Log, batchSize)
			for i := range batch {
				batch[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: data}
			}
			var next uint64 = 1
			b.SetBytes(batchSize * entrySize)
			b.ReportAllocs()
			for b.Loop() {
				for _, l := range batch {
					l.Index = next
					next++
				}
				if err := s.StoreLogs(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkRaftStore_GetLog reads entries of 256 bytes from a log of
// 100000 entries, in index order as replication does.
func BenchmarkRaftStore_GetLog(b *testing.B) {
	const n, entrySize = 100000, 256
	s := mustOpenRaftStore(b)
	mustStoreRaftLogs(b, s, raftTestLogs(1, n, entrySize))
	var l raft.Log
	var i uint64
	b.ReportAllocs()
	for b.Loop() {
		if err := s.GetLog(i%n+1, &l); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkRaftStore_DeleteRange measures log compaction: deleting the
// oldest 10000 entries of a log of 12000, and reports entries/s deleted.
func BenchmarkRaftStore_DeleteRange(b *testing.B) {
	const keep, drop, entrySize = 2000, 10000, 256
	s := mustOpenRaftStore(b)
	var first uint64 = 1
	mustStoreRaftLogs(b, s, raftTestLogs(first, drop+keep, entrySize))
	deleted := 0
	for b.Loop() {
		if err := s.DeleteRange(first, first+drop-1); err != nil {
			b.Fatal(err)
		}
		deleted += drop
		first += drop
		b.StopTimer()
		last := first + keep - 1
		mustStoreRaftLogs(b, s, raftTestLogs(last+1, last+drop, entrySize))
		b.StartTimer()
	}
	b.ReportMetric(float64(deleted)/b.Elapsed().Seconds(), "entries/s")
}
