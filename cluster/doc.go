// Package cluster makes several registrars one: raft replicates the
// handlespace, memberlist gossip finds the registrars and detects
// failures, and the raft leader reconciles one into the other.
//
// # Commands
//
// Every handlespace change is an ENRP message in its RFC wire encoding
// (HANDLE_UPDATE, TAKEOVER_SERVER) inside a small envelope (version, kind,
// time), committed to the raft log (Command). The FSM decodes committed
// commands and applies them to package store. It implements
// raft.BatchingFSM, so a batch of entries is one bbolt transaction that
// also records the last applied index; with NoSnapshotRestoreOnStart a
// restarted node does not replay what its bbolt file already holds. The
// FSM never reads the clock: time travels in the envelope.
//
// # Storage faults
//
// A handlespace or raft log that cannot be written (a full disk, an I/O
// error) never panics the node: the FSM waits and applies the same batch
// again, raft log appends and term/vote writes wait for the disk (the
// leader of several voters steps down instead), and Node.Fault reports
// the fault so the registrar refuses writes. At start, raft state that
// lost something (a corrupt or truncated log, raft.db without a term, a
// handlespace ahead of the log) is refused with what to do; see
// docs/operations.md.
//
// # Membership and reconciliation
//
// Each registrar gossips its metadata (registrar ID, raft/RPC, ASAP, ENRP
// and admin addresses, expected cluster size, whether it has raft state).
// The leader's reconcile loop makes alive registrars raft voters, removes
// the ones that left gracefully, never removes voters below a quorum, and
// takes over the PEs of registrars that failed: one TAKEOVER command gives
// each of their PEs a new home among the live registrars, dealt evenly and
// deterministically. An owner that gossip does not know at all (a
// registrar whose data dir was wiped came back under a new ID, or PEs
// restored from a snapshot of another cluster) is taken over once this
// node has led for TakeoverGrace.
//
// # Writes at followers
//
// raft does not forward writes. The raft port carries, besides raft's
// RPCs, connections on which followers forward encoded commands to the
// leader (the first byte of a connection tells which). A follower answers
// a write only once its own store applied it, so a client reads its
// writes at the registrar it talks to.
//
// # Snapshots
//
// A snapshot is written from a bbolt read transaction the FSM opens in
// Snapshot, on raft's FSM goroutine, so its content is exactly the state
// at the index raft records; Persist streams it while applies go on. The
// content carries its own applied index, and the FSM skips entries at or
// below it.
package cluster
