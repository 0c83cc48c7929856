package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/store"
)

// The store's value types and errors, as the handlespace's callers see
// them: a caller of Handlespace needs no other package for them.
type (
	// PE is one pool element as the handlespace holds it (store.PE).
	PE = store.PE
	// PoolInfo summarises one pool (store.PoolInfo).
	PoolInfo = store.PoolInfo
	// Cursor is a position in the handlespace order for Iterate
	// (store.Cursor).
	Cursor = store.Cursor
	// Rand is the random source of AppendResolution (store.Rand).
	Rand = store.Rand
	// OpResult is what one store operation of a committed command did
	// (store.Result).
	OpResult = store.Result
	// FaultError is a storage fault: a file of the data dir that cannot
	// be written (store.FaultError; the raft log reports the same type).
	FaultError = store.FaultError
)

// Errors the handlespace's writes and reads wrap (compare with errors.Is).
var (
	// ErrPENotFound: a deregistration of a PE that is not registered.
	ErrPENotFound = store.ErrPENotFound
	// ErrPoolNotFound: a resolution of a pool that has no PEs.
	ErrPoolNotFound = store.ErrPoolNotFound
	// ErrStorageFault: a file that cannot be written (see Fault).
	ErrStorageFault = store.ErrStorageFault
	// ErrNotLeader: an operation only the raft leader carries out.
	ErrNotLeader = raft.ErrNotLeader
	// ErrLeadershipLost: the leader stepped down before the operation
	// was confirmed.
	ErrLeadershipLost = raft.ErrLeadershipLost
)

// Config configures a Handlespace.
type Config struct {
	// ID is this registrar's ID (raft's server ID is its hex form).
	ID uint32
	// DataDir holds the handlespace file (handlespace.db) and the raft
	// state (raft/: the log, term and vote, snapshots).
	DataDir string
	// Raft and Membership are the raft and gossip settings; Membership
	// keeps peers.json in its own DataDir.
	Raft       RaftConfig
	Membership MembershipConfig
	// Meta is what this registrar gossips, with the addresses it serves
	// on (bind them first: gossip's first message about this registrar
	// carries them); ID, Raft, RPC and Expect are filled in.
	Meta Meta
	// Bootstrap forms a one-node cluster when there is no raft state.
	Bootstrap bool
	// NoSync skips fsync in the handlespace file and the raft log (tests
	// only). CommitDelay groups the handlespace file's commits (see
	// store.Options.CommitDelay).
	NoSync      bool
	CommitDelay time.Duration
	Logger      hclog.Logger
	// Inmem, if set, runs raft and gossip on the in-memory network (tests
	// only: NodeConfig.Inmem), without files or sockets; the handlespace
	// is then a memory store, or the file in DataDir if that is set.
	Inmem *InmemNetwork
}

// Handlespace is the replicated handlespace: every pool and PE of the
// cluster, kept by raft on every registrar. It is the one type the daemon
// uses, with three kinds of verbs, as plain as raft's Apply and Barrier
// or bbolt's Update and View:
//
//   - writes (Register, Deregister, Remove, Takeover, Batch, Commit) take a
//     context, commit through raft (forwarded to the leader by a
//     follower) and return once this registrar applied the change; every
//     error they return carries the *asap.OperationError to answer a PE
//     or peer with (errors.As): the store's refusal, or Lack of
//     Resources for a write that did not commit (no quorum, a timeout, a
//     storage fault);
//   - local reads (Lookup, Owned, Checksum, AppendResolution, Pools,
//     Iterate, ...) are served from this registrar's copy, without raft,
//     and never wait for the disk;
//   - cluster operations (Status, Servers, RemovePeer, Barrier,
//     WriteSnapshot, RestoreFile, Members, Leave, Fault).
//
// Subscribe delivers the committed changes in order.
//
// A Handlespace is safe for concurrent use.
type Handlespace struct {
	cfg     Config
	log     hclog.Logger
	store   *store.Store
	node    *Node
	members *Membership

	leaderChanges atomic.Uint64

	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open opens the handlespace file and the raft state in cfg.DataDir,
// starts raft and gossip, and joins the cluster in the background.
func Open(cfg Config) (*Handlespace, error) {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	h := &Handlespace{cfg: cfg, log: log, quit: make(chan struct{})}
	sopts := &store.Options{NoSync: cfg.NoSync, Logger: log.Named("store"),
		// Room to grow without a remap while a snapshot's read view is
		// open (a remap would wait for it).
		InitialMmapSize: 1 << 30,
		CommitDelay:     cfg.CommitDelay}
	if cfg.Inmem != nil && cfg.DataDir == "" {
		h.store = store.OpenMemory(sopts)
	} else {
		var err error
		if h.store, err = store.Open(filepath.Join(cfg.DataDir, "handlespace.db"), sopts); err != nil {
			return nil, handlespaceFix(err, cfg.DataDir)
		}
	}
	var err error
	h.node, err = OpenNode(NodeConfig{
		ID:        cfg.ID,
		Dir:       filepath.Join(cfg.DataDir, "raft"),
		Raft:      cfg.Raft,
		Bootstrap: cfg.Bootstrap,
		Logger:    log.Named("raft"),
		NoSync:    cfg.NoSync,
		Inmem:     cfg.Inmem,
	}, h.store)
	if err != nil {
		h.store.Close()
		return nil, err
	}
	mc := cfg.Membership
	if mc.Logger == nil {
		mc.Logger = log.Named("gossip")
	}
	if h.members, err = StartMembership(mc, h.node, cfg.Meta); err != nil {
		h.node.Shutdown()
		h.store.Close()
		return nil, err
	}
	h.watchLeader()
	return h, nil
}

// handlespaceFix adds to an error opening handlespace.db what to do.
func handlespaceFix(err error, dir string) error {
	switch {
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("%w (another registrar runs on this data dir: stop it, or use another -data-dir)", err)
	case errors.Is(err, store.ErrVersion):
		return fmt.Errorf("%w (written by a newer version: run that version)", err)
	case errors.Is(err, store.ErrCorrupt):
		return fmt.Errorf("%w (the file is never overwritten. Move it aside: the next start rebuilds it from raft's snapshot and log, "+
			"and in a cluster catches up from the leader; if raft's state is gone too, restore a snapshot: see docs/operations.md)", err)
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w (make %s writable by this user, or use another -data-dir)", err, dir)
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w (free space on the file system of %s)", err, dir)
	}
	return err
}

// watchLeader counts the leaders this node sees (Stats), from raft's
// observer; the goroutine ends with Close.
func (h *Handlespace) watchLeader() {
	r := h.node.raft
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(obs)
	last := raft.ServerID("")
	if _, id := r.LeaderWithID(); id != "" {
		last = id
		h.leaderChanges.Add(1)
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer r.DeregisterObserver(obs)
		for {
			select {
			case <-h.quit:
				return
			case o := <-ch:
				lo := o.Data.(raft.LeaderObservation)
				if lo.LeaderID != "" && lo.LeaderID != last {
					h.leaderChanges.Add(1)
				}
				if lo.LeaderID != last {
					id, _ := ParseServerID(lo.LeaderID)
					h.node.fsm.changes.publish(Change{Kind: ChangeLeader,
						Leader: LeaderChange{ID: id, Addr: string(lo.LeaderAddr), Term: r.CurrentTerm()}})
				}
				last = lo.LeaderID
			}
		}
	}()
}

// Close stops gossip (without leaving: see Leave), raft and the stores,
// in that order, and ends every subscription. Idempotent; it returns the
// first call's error.
func (h *Handlespace) Close() error {
	h.closeOnce.Do(func() {
		close(h.quit)
		h.wg.Wait()
		h.closeErr = errors.Join(h.members.Shutdown(), h.node.Shutdown(), h.store.Close())
	})
	return h.closeErr
}

// Abort stops the handlespace as a killed process stops: gossip and raft
// stop without leaving or handing anything over, and the handlespace file
// is closed without committing what group commit queued (the next start
// replays it from the raft log). Use Close to stop normally. Idempotent
// with Close: whichever comes first acts.
func (h *Handlespace) Abort() {
	h.closeOnce.Do(func() {
		close(h.quit)
		h.wg.Wait()
		h.closeErr = errors.Join(h.members.Shutdown(), h.node.Shutdown())
		h.store.Abort()
	})
}

// ID is this registrar's ID.
func (h *Handlespace) ID() uint32 { return h.cfg.ID }

// --- local reads ---

// Lookup returns the PE with handle ph and ID id.
func (h *Handlespace) Lookup(ph asap.PoolHandle, id uint32) (PE, bool) { return h.store.Lookup(ph, id) }

// Owned returns the PEs whose home is owner, sorted by (handle, ID).
func (h *Handlespace) Owned(owner uint32) []PE { return h.store.Owned(owner) }

// Checksum is the ENRP PE checksum (RFC 5353) of the PEs owner is home
// for; 0xFFFF if it has none.
func (h *Handlespace) Checksum(owner uint32) uint16 { return h.store.Checksum(owner) }

// ChecksumSum is Checksum unfolded (asap.Checksum): PEs can be taken out
// of it before Value folds it.
func (h *Handlespace) ChecksumSum(owner uint32) asap.Checksum { return h.store.ChecksumSum(owner) }

// AppendResolution selects up to n PEs of pool ph by its policy and
// appends the whole ASAP_HANDLE_RESOLUTION_RESPONSE to dst, built from
// the stored bytes without decoding (store.Store.ResolveAppend): the
// extended buffer and the number of PEs in it. A pool with no PEs gives
// an error wrapping ErrPoolNotFound.
func (h *Handlespace) AppendResolution(dst []byte, ph asap.PoolHandle, n int, rnd Rand) ([]byte, int, error) {
	return h.store.ResolveAppend(dst, ph, n, rnd)
}

// Pools lists the pools in handle order (length, then bytes).
func (h *Handlespace) Pools() []PoolInfo { return h.store.Pools() }

// Pool returns the PEs of pool ph sorted by ID, or nil.
func (h *Handlespace) Pool(ph asap.PoolHandle) []PE { return h.store.Pool(ph) }

// Counts returns the number of pools and of PEs.
func (h *Handlespace) Counts() (pools, pes int) { return h.store.Counts() }

// Iterate visits PEs in the handlespace order after the cursor (see
// store.Store.Iterate): at most limit, those homed at *owner (all if
// owner is nil). fn must not write to the handlespace.
func (h *Handlespace) Iterate(after Cursor, limit int, owner *uint32, fn func(PE) bool) (Cursor, bool) {
	return h.store.Iterate(after, limit, owner, fn)
}

// LastApplied is the raft index of the last change applied here.
func (h *Handlespace) LastApplied() uint64 { return h.store.LastApplied() }

// Fault returns the storage fault that keeps this registrar from writing
// (the raft log, the term and vote, the handlespace file: a *FaultError
// in the chain), or nil. Writes are refused while there is one.
func (h *Handlespace) Fault() error { return h.node.Fault() }

// Subscribe returns a subscription to the changes committed from now on,
// delivered in commit order with their raft index, with room for buffer
// undelivered changes. want, if not nil, picks the changes delivered: it
// runs on raft's FSM goroutine for every change, so it must be quick and
// must not block or call into the handlespace. The FSM never waits for a
// subscriber: when a change finds the buffer full, the subscription ends
// with ErrSlowSubscriber (the subscriber catches up from the handlespace
// and subscribes again). Close it when done.
func (h *Handlespace) Subscribe(buffer int, want func(*Change) bool) *Subscription {
	return h.node.Subscribe(buffer, want)
}

// Stats are counters of the handlespace since Open.
type Stats struct {
	AppliedEntries uint64 // raft entries applied (commands, configuration, no-ops)
	LeaderChanges  uint64 // leaders this registrar saw (its own elections included)
}

// Stats returns the counters.
func (h *Handlespace) Stats() Stats {
	return Stats{AppliedEntries: h.node.fsm.entries.Load(), LeaderChanges: h.leaderChanges.Load()}
}
