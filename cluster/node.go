package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/rserpool-go/registrar/snapshot"
	"github.com/rserpool-go/registrar/store"
	"github.com/rserpool-go/registrar/store/raftlog"
	"github.com/rserpool-go/registrar/transport/tlsutil"
)

// RaftConfig holds the raft settings a registrar exposes.
type RaftConfig struct {
	// Bind is the raft TCP address (default 127.0.0.1:7947; port 0 picks
	// a free port).
	Bind string
	// Advertise is the address other registrars use (default: Bind's real
	// address; must not be unspecified).
	Advertise string
	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout and
	// CommitTimeout are raft's timers (defaults: the lan profile).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval is how often raft checks whether to snapshot
	// (default 120 s); SnapshotThreshold how many new entries trigger one
	// (default 8192); SnapshotRetain how many snapshots are kept (default
	// 2); TrailingLogs how many entries stay after a snapshot so slow
	// followers can catch up without one (default 10240). Together they
	// bound the size of the raft log.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	SnapshotRetain    int
	TrailingLogs      uint64
	// ApplyTimeout bounds how long a write waits to enter the raft log
	// (default 10 s).
	ApplyTimeout time.Duration
	// TLS, when set, makes the raft port (raft's RPCs and forwarded
	// writes) mutual TLS: only registrar certificates of its CA are
	// accepted, and the registrars dialed must present one (see
	// tlsutil). Nil: plain TCP.
	TLS *tlsutil.Store
}

// Timing profiles.
const (
	ProfileLAN   = "lan"   // raft's and memberlist's defaults for a LAN
	ProfileLocal = "local" // short timers for one host / loopback tests
)

// DefaultRaftConfig returns the settings of a profile (lan or local).
func DefaultRaftConfig(profile string) RaftConfig {
	c := RaftConfig{
		Bind:               "127.0.0.1:7947",
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		SnapshotInterval:   120 * time.Second,
		SnapshotThreshold:  8192,
		SnapshotRetain:     2,
		TrailingLogs:       10240,
		ApplyTimeout:       10 * time.Second,
	}
	if profile == ProfileLocal {
		c.HeartbeatTimeout = 200 * time.Millisecond
		c.ElectionTimeout = 200 * time.Millisecond
		c.LeaderLeaseTimeout = 100 * time.Millisecond
		c.CommitTimeout = 5 * time.Millisecond
	}
	return c
}

// Validate lists every problem of the raft settings.
func (c RaftConfig) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Bind); err != nil {
		errs = append(errs, fmt.Errorf("raft bind %q: %v", c.Bind, err))
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			errs = append(errs, fmt.Errorf("raft advertise %q: %v", c.Advertise, err))
		}
	}
	if c.HeartbeatTimeout < 5*time.Millisecond {
		errs = append(errs, fmt.Errorf("raft heartbeat timeout %v is below 5ms", c.HeartbeatTimeout))
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("raft election timeout %v is below the heartbeat timeout %v", c.ElectionTimeout, c.HeartbeatTimeout))
	}
	if c.LeaderLeaseTimeout <= 0 || c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("raft leader lease timeout %v must be positive and at most the heartbeat timeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout))
	}
	if c.CommitTimeout <= 0 {
		errs = append(errs, fmt.Errorf("raft commit timeout %v must be positive", c.CommitTimeout))
	}
	if c.SnapshotInterval < 5*time.Millisecond {
		errs = append(errs, fmt.Errorf("raft snapshot interval %v is below 5ms", c.SnapshotInterval))
	}
	if c.SnapshotThreshold == 0 {
		errs = append(errs, errors.New("raft snapshot threshold must be positive"))
	}
	if c.SnapshotRetain < 1 {
		errs = append(errs, fmt.Errorf("raft snapshot retain %d must be at least 1", c.SnapshotRetain))
	}
	if c.ApplyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("raft apply timeout %v must be positive", c.ApplyTimeout))
	}
	return errors.Join(errs...)
}

// NodeConfig configures a raft node.
type NodeConfig struct {
	// ID is the registrar ID; the raft server ID is its 8-digit hex form.
	ID uint32
	// Dir holds wal/ (the raft log), raft.db (term and vote) and
	// snapshots/.
	Dir  string
	Raft RaftConfig
	// Bootstrap forms a one-node cluster when there is no raft state.
	Bootstrap bool
	Logger    hclog.Logger
	// NoSync skips fsync in the raft log (tests only).
	NoSync bool
	// WALSegmentSize is the size at which the raft log starts a new
	// segment file (bytes; default 64 MiB).
	WALSegmentSize int64
	// Inmem, if set, runs the node without files or sockets (tests only):
	// raft's in-memory log, stable and snapshot stores and its
	// InmemTransport, forwarded writes over in-memory pipes, and (for the
	// node's Membership) gossip over memberlist's MockNetwork, all wired
	// to the other nodes of the same InmemNetwork. Dir, Raft.Bind and the
	// raft log settings are not used.
	Inmem *InmemNetwork
}

// ServerID is the raft server ID of a registrar.
func ServerID(id uint32) raft.ServerID { return raft.ServerID(fmt.Sprintf("%08x", id)) }

// ParseServerID is the inverse of ServerID.
func ParseServerID(s raft.ServerID) (uint32, error) {
	v, err := strconv.ParseUint(string(s), 16, 32)
	return uint32(v), err
}

// Node is one registrar's raft member: the log in a WAL, term and vote on
// bbolt, the file snapshot store, the TCP transport and the FSM over the
// handlespace (or raft's in-memory stores and transport: NodeConfig.Inmem).
type Node struct {
	cfg   NodeConfig
	log   hclog.Logger
	store *store.Store
	fsm   *FSM
	logs  *raftlog.Stable // stable store: term and vote in raft.db (nil in memory)
	wal   *raftlog.WAL    // the raft log (nil in memory)
	mux   *muxLayer       // nil in memory
	// What raft runs on: wal, logs, the file snapshot store and the TCP
	// transport, or their in-memory doubles.
	logStore   raft.LogStore
	stable     raft.StableStore
	snaps      raft.SnapshotStore
	trans      raft.Transport
	closeTrans func() error
	raft       *raft.Raft
	fwd        forwardPool
	batch      forwardBatcher // forwarded writes waiting for the leader

	// stopping is set when Shutdown begins: writes that wait for the disk
	// give up.
	stopping atomic.Bool
	// started is raft once NewRaft returned (read by the log's retry
	// policy, which raft's goroutines run).
	started atomic.Pointer[raft.Raft]

	closeOnce sync.Once
	closeErr  error
}

// ErrNoLeader is returned when a write cannot find a leader in time.
var ErrNoLeader = errors.New("no raft leader")

// OpenNode opens the raft state in cfg.Dir and starts raft.
func OpenNode(cfg NodeConfig, st *store.Store) (*Node, error) {
	if err := cfg.Raft.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = newRaftLogger(log)
	n := &Node{cfg: cfg, log: log, store: st}
	if cfg.Inmem != nil {
		cfg.Inmem.openNode(n)
	} else if err := n.openFiles(); err != nil {
		return nil, err
	}
	n.fsm = NewFSM(st, snapshot.Meta{RegistrarID: cfg.ID}, log.Named("fsm"))

	rc := raft.DefaultConfig()
	rc.LocalID = ServerID(cfg.ID)
	rc.Logger = log
	rc.HeartbeatTimeout = cfg.Raft.HeartbeatTimeout
	rc.ElectionTimeout = cfg.Raft.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.Raft.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.Raft.CommitTimeout
	rc.SnapshotInterval = cfg.Raft.SnapshotInterval
	rc.SnapshotThreshold = cfg.Raft.SnapshotThreshold
	rc.TrailingLogs = cfg.Raft.TrailingLogs
	rc.NoSnapshotRestoreOnStart = true
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256

	if err := n.catchUpFromSnapshot(); err != nil {
		n.closeRes()
		return nil, err
	}
	if n.wal != nil {
		if err := n.checkState(); err != nil {
			n.closeRes()
			return nil, err
		}
	}
	has, err := n.hasState()
	if err != nil {
		n.closeRes()
		return nil, fmt.Errorf("raft state: %w", err)
	}
	n.raft, err = raft.NewRaft(rc, n.fsm, n.logStore, n.stable, n.snaps, n.trans)
	if err != nil {
		n.closeRes()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.started.Store(n.raft)
	if !has && cfg.Bootstrap {
		f := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: n.trans.LocalAddr(),
		}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			n.Shutdown()
			return nil, fmt.Errorf("bootstrap raft: %w", err)
		}
		log.Info("bootstrapped a new one-node raft cluster", "id", rc.LocalID, "address", n.trans.LocalAddr())
	}
	return n, nil
}

// openFiles opens the raft state in cfg.Dir (the WAL, raft.db, the
// snapshots) and the TCP transport, which also serves forwarded writes.
func (n *Node) openFiles() error {
	cfg, log := n.cfg, n.log
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("raft dir: %w", err)
	}
	if err := checkStableStore(cfg.Dir); err != nil {
		return err
	}
	var err error
	n.logs, err = raftlog.OpenStable(filepath.Join(cfg.Dir, "raft.db"), &raftlog.StableOptions{NoSync: cfg.NoSync,
		Logger: log.Named("raftdb"),
		// raft panics when it cannot save its term: wait for the disk.
		RetryWrite: func(error) bool { return true }})
	if err != nil {
		return withFix(err, cfg.Dir)
	}
	if n.wal, err = raftlog.OpenWAL(filepath.Join(cfg.Dir, "wal"), &raftlog.WALOptions{NoSync: cfg.NoSync, Logger: log.Named("wal"), SegmentSize: cfg.WALSegmentSize,
		RetryWrite: n.retryAppend}); err != nil {
		n.logs.Close()
		return withFix(err, cfg.Dir)
	}
	if n.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.Raft.SnapshotRetain, log.Named("snapshot")); err != nil {
		n.closeRes()
		return fmt.Errorf("raft snapshot store: %w", err)
	}
	var adv net.Addr
	if cfg.Raft.Advertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", cfg.Raft.Advertise); err != nil {
			n.closeRes()
			return fmt.Errorf("raft advertise %q: %w", cfg.Raft.Advertise, err)
		}
	}
	n.mux, err = newMuxLayer(cfg.Raft.Bind, adv, cfg.Raft.TLS, log.Named("transport"))
	if err != nil {
		n.closeRes()
		return fmt.Errorf("raft bind %s: %w", cfg.Raft.Bind, err)
	}
	n.mux.serve = n.serveForward
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.mux, MaxPool: 3, Timeout: 10 * time.Second, Logger: log.Named("transport"),
	})
	n.trans, n.closeTrans = trans, trans.Close
	n.logStore, n.stable = n.wal, n.logs
	n.fwd.dial = func(addr string, timeout time.Duration) (net.Conn, error) {
		return dialKind(addr, timeout, connForward, cfg.Raft.TLS)
	}
	return nil
}

// hasState reports whether the node has raft state (a log, a term, a
// snapshot).
func (n *Node) hasState() (bool, error) { return raft.HasExistingState(n.logStore, n.stable, n.snaps) }

func (n *Node) closeRes() {
	if n.closeTrans != nil {
		n.closeTrans()
	} else if n.mux != nil {
		n.mux.Close()
	}
	if n.wal != nil {
		n.wal.Close()
	}
	if n.logs != nil {
		n.logs.Close()
	}
}

// catchUpFromSnapshot restores the newest raft snapshot into the store
// when the store is behind it. raft does not restore snapshots at start
// (NoSnapshotRestoreOnStart: the store normally holds more), so a crash
// after raft stored an installed snapshot but before the store had it
// would otherwise lose the snapshot's content: raft replays only the log
// after the snapshot.
func (n *Node) catchUpFromSnapshot() error {
	snaps, err := n.snaps.List()
	if err != nil || len(snaps) == 0 {
		return err
	}
	latest := snaps[0] // newest first
	if latest.Index <= n.store.LastApplied() {
		return nil
	}
	n.log.Warn("the handlespace is behind raft's newest snapshot: restoring it", "snapshot-index", latest.Index,
		"applied-index", n.store.LastApplied(), "snapshot", latest.ID)
	_, rc, err := n.snaps.Open(latest.ID)
	if err != nil {
		return fmt.Errorf("open raft snapshot %s: %w", latest.ID, err)
	}
	if err := n.fsm.Restore(rc); err != nil {
		return fmt.Errorf("restore raft snapshot %s: %w", latest.ID, err)
	}
	// The store now holds exactly the state at the snapshot's index.
	if _, err := n.store.Apply(latest.Index, nil); err != nil {
		return fmt.Errorf("record applied index %d: %w", latest.Index, err)
	}
	return nil
}

// Raft gives access to the raft instance (membership changes, stats).
func (n *Node) Raft() *raft.Raft { return n.raft }

// Store is the handlespace this node applies to.
func (n *Node) Store() *store.Store { return n.store }

// Addr is the raft transport address.
func (n *Node) Addr() raft.ServerAddress { return n.trans.LocalAddr() }

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Subscribe returns a subscription to the changes this node's FSM
// applies from now on (see Handlespace.Subscribe).
func (n *Node) Subscribe(buffer int, want func(*Change) bool) *Subscription {
	return n.fsm.changes.subscribe(buffer, want)
}

// Propose commits a command and returns the FSM's result once it is
// applied locally (so a following read sees it). On a follower it is
// forwarded to the leader. While there is no leader it waits, bounded by
// ctx and the apply timeout, then fails with ErrNoLeader.
func (n *Node) Propose(ctx context.Context, cmd Command) (*ApplyResult, error) {
	data, err := cmd.Marshal()
	if err != nil {
		return nil, err
	}
	return n.ProposeRaw(ctx, data)
}

// ProposeRaw is Propose for an already encoded command.
func (n *Node) ProposeRaw(ctx context.Context, data []byte) (*ApplyResult, error) {
	res, _, err := n.propose(ctx, data, true)
	return res, err
}

// propose proposes data, retrying while there is no leader, and returns
// its result and raft index. With applied, at a follower it waits
// (bounded) until this node applied the entry too; without, it returns
// once the leader applied it (committed: durable at a quorum), and
// WaitApplied waits for the rest (a Session's writes).
func (n *Node) propose(ctx context.Context, data []byte, applied bool) (*ApplyResult, uint64, error) {
	deadline := time.Now().Add(n.cfg.Raft.ApplyTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	backoff := 10 * time.Millisecond
	for {
		res, idx, err := n.tryPropose(ctx, data, time.Until(deadline), applied)
		if err == nil || !retryable(err) {
			return res, idx, err
		}
		if time.Until(deadline) < backoff {
			return nil, 0, fmt.Errorf("%w: %v", ErrNoLeader, err)
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

func retryable(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, ErrNoLeader) || errors.Is(err, raft.ErrEnqueueTimeout) || errors.Is(err, errForwardFailed)
}

var errForwardFailed = errors.New("forward to leader failed")

func (n *Node) tryPropose(ctx context.Context, data []byte, timeout time.Duration, applied bool) (*ApplyResult, uint64, error) {
	if n.raft.State() == raft.Leader {
		return n.applyLocal(ctx, data, timeout)
	}
	res, idx, err := n.forwardBatched(ctx, data)
	if err != nil {
		return nil, 0, err
	}
	if applied {
		// Read your writes: wait (bounded) until this node applied the
		// entry, so a resolution here right after the answer sees the
		// change.
		n.waitApplied(ctx, idx, timeout)
	}
	return res, idx, nil
}

// WaitApplied waits until this node applied index, bounded by ctx and
// the raft apply timeout (the entry is committed either way).
func (n *Node) WaitApplied(ctx context.Context, index uint64) {
	n.waitApplied(ctx, index, n.cfg.Raft.ApplyTimeout)
}

// waitApplied waits until the local store applied index (or the time is
// up; the write is committed either way).
func (n *Node) waitApplied(ctx context.Context, index uint64, timeout time.Duration) {
	if index == 0 {
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		applied := n.fsm.appliedSignal() // before the check: a move after it closes this one
		if n.store.LastApplied() >= index {
			return
		}
		select {
		case <-applied:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// applyLocal commits data as the leader; it returns the FSM's result and
// the entry's index.
func (n *Node) applyLocal(ctx context.Context, data []byte, timeout time.Duration) (*ApplyResult, uint64, error) {
	if n.raft.State() != raft.Leader {
		return nil, 0, raft.ErrNotLeader
	}
	if timeout <= 0 {
		return nil, 0, raft.ErrEnqueueTimeout
	}
	f := n.raft.Apply(data, timeout)
	done := make(chan struct{})
	var err error
	go func() { // ends when raft resolves the future (commit, error or shutdown)
		err = f.Error()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	if err != nil {
		return nil, 0, err
	}
	res, ok := f.Response().(*ApplyResult)
	if !ok {
		return nil, 0, fmt.Errorf("unexpected FSM response %T", f.Response())
	}
	return res, f.Index(), nil
}

// Shutdown stops raft and closes the transport and log store. Idempotent.
// Writes waiting for a disk that cannot be written give up first; if raft
// still cannot stop (it waits to save its term in raft.db), Shutdown
// gives up after 10 s with an error naming the file, leaving raft's
// goroutines behind: the process should exit.
func (n *Node) Shutdown() error {
	n.closeOnce.Do(func() {
		n.stopping.Store(true)
		if n.fsm != nil {
			defer n.fsm.changes.close()
		}
		if n.fsm != nil {
			n.fsm.Stop()
		}
		var errs []error
		if n.raft != nil {
			done := make(chan error, 1)
			go func() { done <- n.raft.Shutdown().Error() }() // ends when raft stops
			var err error
			select {
			case err = <-done:
			case <-n.stuckTimer():
				n.closeErr = fmt.Errorf("raft shutdown: raft does not stop: %w", n.logs.Fault())
				return
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
			}
		}
		if n.closeTrans != nil {
			if err := n.closeTrans(); err != nil {
				errs = append(errs, err)
			}
		}
		n.fwd.closeAll()
		if n.wal != nil {
			if err := n.wal.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if n.logs != nil {
			if err := n.logs.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// stuckTimer fires 10 s from now if raft.db cannot be written (raft may
// wait for it forever), else never.
func (n *Node) stuckTimer() <-chan time.Time {
	if n.logs == nil || n.logs.Fault() == nil {
		return nil
	}
	return time.After(10 * time.Second)
}
