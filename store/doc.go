// Package store is the registrar's handlespace (Store: every pool and pool
// element, with the member selection policies of RFC 5356), kept in memory
// and in one bbolt file. It knows nothing about sockets or raft: the
// cluster package drives it, applying committed raft entries as Apply
// batches, and the raft log itself is package raftlog. bbolt stays inside:
// the store's API has no bbolt type (a ReadView is the store's own read
// transaction).
//
// # Handlespace
//
// A Store is an in-memory index backed by one bbolt file. The index holds,
// per pool, its PEs as their encoded RFC 5354 Pool Element parameters plus
// the few numbers selection needs, a selection structure for the pool's
// policy, and, per home registrar, the count and PE checksum (RFC 5353) of
// the PEs it owns. Reads (Lookup, Resolve, Iterate, ...) are served from
// memory and never wait for disk I/O; writes come as Apply batches, each
// one bbolt transaction that also records the raft index:
//
//	st, err := store.Open("handlespace.db", nil)
//	res, err := st.Apply(index, []store.Op{{Kind: store.OpRegister, PE: pe}})
//	pes, policy, err := st.Resolve("EchoPool", 3, rnd)
//
// Apply is deterministic (the raft FSM runs it on every node); it never
// reads the clock: registration times come in the ops. Open rebuilds the
// index from the file in one pass.
//
// Resolve returns decoded asap.PoolElements; ResolveAppend appends the
// whole ASAP_HANDLE_RESOLUTION_RESPONSE, built by the asap codec from the
// stored parameter bytes (asap.PoolElementView,
// asap.AppendHandleResolutionResponse) without decoding or allocating, and
// is the one to use on the ASAP hot path (about 15 times faster for round
// robin). The store reads and patches encoded elements only through those
// asap types: it knows no byte offset of the wire format.
//
// # Pools and policies
//
// A pool exists while it has PEs. Its policy type, user transport kind and
// transport use come from its first PE; a PE with another one is refused
// (Check, and per op in Apply) with a *PEError, unless it is the pool's
// only member (it may re-register differently). The *PEError carries the
// ASAP Operation Error (cause and offending parameter) to answer with,
// found by errors.As as a *asap.OperationError; the store is the one place
// that decides it.
//
// Supported policies: Round Robin, Weighted Round Robin, Random, Weighted
// Random, Priority, Least Used, Least Used with Degradation, Priority Least
// Used and Randomized Least Used (RFC 5356), RSPLIB's Randomized Priority
// LU, Randomized LU with Degradation, Priority LU with Degradation and
// Randomized Priority LU with Degradation, and the distance penalty
// variants WRAND-DPF, LU-DPF and LUD-DPF, which a registrar treats as
// their base policy (its distance to a PE is 0). Ties are broken round
// robin, as RSPLIB does with its per-PE sequence numbers. A resolution of
// n returns n distinct PEs (all, if the pool has fewer), and no policy
// costs O(pool size): round robin and random pick slots directly, the
// weighted random policies sample a Fenwick tree (weight, or 0xFFFFFFFF -
// load [- degradation], at least 1), and the deterministic ones keep
// buckets of equal key (load, priority, round, ...) in a sorted chunk list
// with a ring per bucket that rotates on selection. Selection state is
// local and not persisted.
//
// # File layout
//
// Bucket "pes": key = handle length (1 byte) | handle | PE ID (4 bytes,
// big-endian); value = version byte | registration time (8 bytes) | Pool
// Element parameter. bbolt sorts keys byte-wise, so the order everywhere
// (Iterate, Pools, ReadView.ForEach, Owned, OpReassign's dealing) is by
// handle length, then handle bytes, then ID. Bucket "meta": the format
// version and the last applied index (the caller's raft index). Pool
// handles are at most 255 bytes.
//
// # Caveats
//
//   - A file that is not a handlespace database, is truncated or holds a
//     value that does not decode makes Open fail with ErrCorrupt naming the
//     file; it is never written to.
//   - Apply changes memory before it commits, so readers may see a batch an
//     instant before it is durable; an I/O failure undoes it in memory.
//   - A commit that fails (a full disk, an I/O error) faults the store
//     (Fault, a *FaultError wrapping ErrStorageFault): nothing queued is
//     committed after it, and the whole file is rewritten from memory,
//     retried until it works, so the applied index recorded in the file
//     always describes its content. Tests inject such failures with
//     Options.InjectFault.
//   - Values returned by the read methods are copies; byte slices a
//     ReadView passes to its callbacks are valid only during the call.
//   - Iterate and a ReadView's ForEach call back with locks or a read
//     transaction held: the callback must not write to the Store.
//
// # Read views
//
// A ReadView (BeginView, View) is a consistent view of the file as of the
// last committed Apply that later applies do not change: the raft FSM
// streams a snapshot from one while it goes on applying. It gives the
// applied index it holds and walks its PEs decoded (ForEach) or as their
// stored bytes (ForEachEncoded, for snapshots).
package store
