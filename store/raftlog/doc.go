// Package raftlog is the raft node's durable state besides snapshots: the
// raft log (WAL, a hashicorp/raft LogStore in segment files of its own)
// and the stable store (Stable, raft's term and vote in the bbolt file
// raft.db). Package cluster opens both in a node's raft directory:
//
//	raft/wal/00000000000000000001.wal ...   the log (WAL)
//	raft/raft.db                            term and vote (Stable)
//	raft/snapshots/                         raft's FileSnapshotStore
//
// They replace hashicorp/raft-boltdb, which does not build with the raft,
// memberlist and go-metrics versions this module uses (see
// docs/design.md).
//
// # The log
//
// Each StoreLogs is one write and one fdatasync; entries carry a CRC-32C.
// A torn tail (a crash during an append) is cut off with a warning at
// open; any other damage is refused with a *WALCorruptError that names
// the file, the offset and the ways to recover. A failed append leaves
// nothing behind.
//
// # Storage faults
//
// A write that fails (a full disk, an I/O error) faults the log or the
// stable store: Fault returns a *store.FaultError (the same type the
// handlespace file reports) until a write succeeds, and the RetryWrite
// option decides whether the write waits for the disk or fails (raft
// panics when it cannot save its term, so a node retries those).
//
// # Files of earlier versions
//
// A pre-release version kept the log in raft.db; a raft.db with that
// (empty) "logs" bucket still opens, one whose log still holds entries is
// refused.
package raftlog
