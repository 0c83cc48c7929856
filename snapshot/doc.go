// Package snapshot is the one archive format for handlespace snapshots:
// the raft FSM's snapshots and the operator's `registrar snapshot save`,
// `inspect` and `restore` all write and read it. WriteView writes one from
// a store.ReadView (the stored PE bytes, copied without decoding);
// Restore replaces a store's content with one (store.ReplaceAll).
//
// # Format (version 1)
//
// A snapshot is one stream, all integers big-endian:
//
//	header   8 bytes   magic "RSPSNAP\x00"
//	         2 bytes   format version (1)
//	         4 bytes   metadata length n (at most 64 KiB)
//	         n bytes   metadata: a JSON object (see Meta)
//	body     RFC 5354 parameters back to back, each padded to 4 bytes:
//	           Pool Handle (0x0009)        starts a pool
//	           Registration Time (0xBF01)  optional; 8 bytes, unix ns: the
//	                                       time of last registration of
//	                                       the PE that follows
//	           Pool Element (0x000A)       one PE of the current pool
//	trailer  8 bytes   magic "RSPSEND\x00"
//	         8 bytes   number of pools
//	         8 bytes   number of PEs
//	        32 bytes   SHA-256 of every byte before these 32
//
// Pools come in the store's order (handle length, then handle bytes),
// each at most once and with at least one PE; within a pool, PEs come by
// increasing PE identifier; all PEs of a pool share the policy type, the
// user transport kind and its use. Registration Time is a registrar
// private parameter: its type's upper two bits (10) tell an RFC 5354
// parser to skip it, and a reader that meets a Pool Element without one
// takes the snapshot's creation time. Other unknown parameters whose type
// has the upper bit set are skipped likewise; any other unknown parameter
// is an error.
//
// # Verified
//
// Readers check everything while they stream: the magic, the version, the
// metadata, every parameter (it decodes as RFC 5354 says, the order and
// pool rules above), the trailer's counts against the body, the SHA-256
// over all of it, and that nothing follows. Reader.Next returns io.EOF
// only after all of that matched; consumers (Restore, the store's
// ReplaceAll) change nothing before. Saving verifies the written file by
// reading it back before it is renamed into place (WriteFile).
//
// # Metadata
//
// The metadata says who wrote the snapshot and of what: the format
// version (again), the registrar that wrote it and its build, the raft
// index and term the content reflects, the creation time. The pool and PE
// counts live in the trailer (they are known only at the end of the
// stream) and are filled into Meta by readers. There is no cluster
// identity yet: ClusterID is reserved and empty (see docs/snapshots.md).
//
// RaftIndex is the raft index of the last entry whose effect the content
// includes, in the log of the cluster that wrote it. A snapshot handed to
// raft.Restore (a user restore) must carry 0 there: its index belongs to
// another log (Rewrap rewrites it).
//
// # Caveats
//
//   - A PE's soft state (lifetime timers, keep-alive state, the home
//     registrar's connection) is not part of the handlespace and so not of
//     a snapshot.
//   - Reader.Next returns PEs before the checksum has been checked: use
//     them only once it returned io.EOF.
package snapshot
