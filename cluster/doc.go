// Package cluster makes several registrars one: raft replicates the
// handlespace, memberlist gossip finds the registrars and detects
// failures, and the raft leader reconciles one into the other.
//
// # The Handlespace
//
// Handlespace is what the daemon (package registrar) sees of all of it:
// the replicated handlespace, opened with Open on a data directory
// (handlespace.db and raft/), with three kinds of verbs as plain as
// raft's Apply and Barrier or bbolt's Update and View:
//
//   - writes (Register, Deregister, Remove, Takeover, Batch, Commit) take a
//     context, commit through raft (a follower forwards them to the
//     leader) and return once this registrar applied them; every error
//     carries the *asap.OperationError to answer with (WriteError): the
//     store's refusal of a PE, or Lack of Resources for a write that did
//     not commit;
//   - local reads (Lookup, Owned, Checksum, AppendResolution, Pools,
//     Iterate) come from this registrar's copy without raft;
//   - cluster operations (Status, Servers, RemovePeer, Barrier,
//     WriteSnapshot, RestoreFile, Members, Leave, Fault, Stats).
//
// Subscribe delivers the committed changes (Change: the command or a
// restore, with its raft index) in commit order, after they were applied;
// the FSM never waits for a subscriber: one whose buffer is full is ended
// with ErrSlowSubscriber and catches up from the handlespace. PE
// supervision, ENRP peering and the daemon's change stream follow the
// commits that way. A Change carries the store's results of its
// operations (a PE added or updated, pools created or removed, the PEs a
// takeover moved or a dropped owner lost); removals say why (KindRemove
// with a RemoveReason); raft's leader changes and gossip's member
// changes come as ChangeLeader and ChangeMember, stamped with the index
// of the last change published before them (ChangeKind is only appended
// to).
//
// The store's value types (PE, PoolInfo, Cursor, FaultError) are
// re-exported under cluster's name, so a caller needs no other package.
// Below the Handlespace are Node (raft, its log in package raftlog, the
// FSM), Membership (gossip, the reconcile loop) and package store.
//
// # Commands
//
// Every handlespace change is an ENRP message in its RFC wire encoding
// (HANDLE_UPDATE, TAKEOVER_SERVER) inside a small envelope (version, kind,
// time), committed to the raft log (Command). The FSM decodes committed
// commands and applies them to package store. It implements
// raft.BatchingFSM, so a batch of entries is one store transaction that
// also records the last applied index; with NoSnapshotRestoreOnStart a
// restarted node does not replay what its handlespace file already
// holds. The FSM never reads the clock: time travels in the envelope.
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
// The leader's reconcile loop adds alive registrars to raft (voters up to
// MembershipConfig.Voters, non-voters beyond), promotes a healthy
// non-voter when a voter is down (autopilot.go: the leader asks each
// non-voter for its raft progress on the forwarded-write port) and demotes
// dead or extra voters, removes the ones that left gracefully, never
// removes or demotes voters below a quorum, and
// takes over the PEs of registrars that failed: one TAKEOVER command gives
// each of their PEs a new home among the live registrars, dealt evenly and
// deterministically. An owner that gossip does not know at all (a
// registrar whose data dir was wiped came back under a new ID, or PEs
// restored from a snapshot of another cluster) is taken over once this
// node has led for TakeoverGrace.
//
// What to do is a pure function, plan: from raft's servers, gossip's
// members (each with a MemberStatus: alive, failed, left), the owners of
// the handlespace's PEs and whether the grace is over, it lists actions
// (add a voter or non-voter, promote, demote, remove a server, take over
// registrar X's PEs, hold a removal that would lose quorum). The loop gathers the facts and carries
// the actions out; the plan is tested directly with tables.
//
// # Writes at followers
//
// raft does not forward writes. The raft port carries, besides raft's
// RPCs, connections on which followers forward encoded commands to the
// leader (the first byte of a connection tells which). Writes made at the
// same time go in one batch frame (forward_batch.go), which the leader
// proposes together and answers in one reply. A follower answers a write
// only once its own store applied it, so a client reads its writes at the
// registrar it talks to.
//
// # In-memory clusters for tests
//
// A NodeConfig with Inmem set (an InmemNetwork) runs a node without files
// or sockets: raft's InmemStore, InmemSnapshotStore and InmemTransport,
// forwarded writes over in-memory pipes, and, for its Membership, gossip
// over memberlist's MockNetwork. Several such nodes form a cluster in one
// process, with the same reconcile, takeover and forwarding code as over
// the network. Package clustertest opens such Handlespaces (a memory
// store, or a file) for the daemon's unit tests.
//
// # Snapshots
//
// A raft snapshot is package snapshot's archive, written from a store
// read view the FSM opens in Snapshot, on raft's FSM goroutine, so its
// content is exactly the state at the index raft records; Persist streams
// it while applies go on. The content carries its own applied index, and
// the FSM skips entries at or below it.
package cluster
