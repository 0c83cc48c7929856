package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rserpool-go/registrar/snapshot"
)

// Cluster operations of the Handlespace: what raft and gossip say, and
// what only the leader does.

// RaftStatus is what raft reports about this registrar.
type RaftStatus struct {
	State      string // Follower, Candidate, Leader or Shutdown
	LeaderAddr string // the leader's raft address ("": none known)
	LeaderID   uint32 // the leader's registrar ID (0: none known)
	Term       uint64
	LastIndex  uint64 // the last entry in this registrar's raft log
	// LastContact is when this follower last heard from the leader (zero
	// if it never did).
	LastContact time.Time
}

// Stale reports that this registrar knows no leader (no quorum, an
// election) or has stopped: its handlespace may be behind the cluster's.
func (s RaftStatus) Stale() bool { return s.LeaderAddr == "" || s.State == raft.Shutdown.String() }

// Status returns raft's view of this registrar.
func (h *Handlespace) Status() RaftStatus {
	r := h.node.raft
	addr, id := r.LeaderWithID()
	s := RaftStatus{State: r.State().String(), LeaderAddr: string(addr), Term: r.CurrentTerm(),
		LastIndex: r.LastIndex(), LastContact: r.LastContact()}
	if id != "" {
		s.LeaderID, _ = ParseServerID(id)
	}
	return s
}

// IsLeader reports whether this registrar is the raft leader.
func (h *Handlespace) IsLeader() bool { return h.node.IsLeader() }

// RaftAddr is this registrar's raft (and forwarded-write) address.
func (h *Handlespace) RaftAddr() string { return string(h.node.Addr()) }

// Suffrage is a raft server's role (raft's ServerSuffrage).
type Suffrage = raft.ServerSuffrage

// The raft roles.
const (
	Voter    = raft.Voter
	Nonvoter = raft.Nonvoter
)

// Server is one member of the raft configuration.
type Server struct {
	ID       uint32 // registrar ID
	Address  string // raft address
	Suffrage Suffrage
}

// Servers lists the raft configuration as this registrar knows it.
func (h *Handlespace) Servers() ([]Server, error) {
	f := h.node.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		id, err := ParseServerID(s.ID)
		if err != nil {
			return nil, fmt.Errorf("raft server %q: not a registrar ID", s.ID)
		}
		out = append(out, Server{ID: id, Address: string(s.Address), Suffrage: s.Suffrage})
	}
	return out, nil
}

// ErrUnknownPeer is returned by RemovePeer for a registrar that is not in
// the raft configuration.
var ErrUnknownPeer = errors.New("not in the raft configuration")

// RemovePeer removes registrar id from the raft configuration (this
// registrar must lead: ErrNotLeader).
func (h *Handlespace) RemovePeer(id uint32) error {
	servers, err := h.Servers()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(servers, func(s Server) bool { return s.ID == id }) {
		return fmt.Errorf("raft peer 0x%s: %w", ServerID(id), ErrUnknownPeer)
	}
	return h.node.raft.RemoveServer(ServerID(id), 0, 10*time.Second).Error()
}

// Barrier waits until every entry committed before the call is applied
// here (this registrar must lead), bounded by ctx and the apply timeout.
func (h *Handlespace) Barrier(ctx context.Context) error {
	timeout := h.cfg.Raft.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	return h.node.raft.Barrier(timeout).Error()
}

// WaitLeader waits until raft knows a leader (true), or d passed or ctx
// ended (false, and ctx's error).
func (h *Handlespace) WaitLeader(ctx context.Context, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		if addr, _ := h.node.raft.LeaderWithID(); addr != "" {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WriteSnapshot writes the handlespace, as of the last applied change, to
// w as a snapshot archive with metadata m (the raft index of the content
// and the current term are filled in) and returns the metadata written.
// One read view of the store is open while it writes; changes go on.
func (h *Handlespace) WriteSnapshot(w io.Writer, m snapshot.Meta) (snapshot.Meta, error) {
	m.RaftTerm = h.node.raft.CurrentTerm()
	v, err := h.store.BeginView()
	if err != nil {
		return m, fmt.Errorf("snapshot: %w", err)
	}
	defer v.Close()
	return snapshot.WriteView(w, v, m)
}

// RestoreFile replaces the cluster's handlespace with the snapshot file at
// path: it is verified first (a file that does not verify changes
// nothing: snapshot.IsFormatError), then installed through raft, which
// restores every registrar's FSM from it (followers get it as an install
// of a snapshot). This registrar must lead (ErrNotLeader); if it steps
// down before the followers confirmed, the error is ErrLeadershipLost
// and the cluster may hold either handlespace (restoring again is safe).
// The stream handed to raft carries raft index 0: the snapshot's index
// belongs to another raft log.
func (h *Handlespace) RestoreFile(ctx context.Context, path string) (snapshot.Meta, error) {
	meta, err := snapshot.VerifyFile(path)
	if err != nil {
		return meta, err
	}
	f, err := os.Open(path)
	if err != nil {
		return meta, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return meta, err
	}
	deadline := time.Now().Add(h.cfg.Raft.ApplyTimeout + 10*time.Second)
	for {
		rd, n, err := snapshot.Rewrap(f, fi.Size(), func(m *snapshot.Meta) { m.RaftIndex = 0 })
		if err != nil {
			return meta, err
		}
		err = h.node.raft.Restore(&raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: n}, rd, 30*time.Second)
		// Right after an election the configuration entry may not be
		// applied yet: raft refuses a restore until it is.
		if err == nil || !strings.Contains(err.Error(), "wait until the configuration entry") || time.Now().After(deadline) {
			return meta, err
		}
		select {
		case <-ctx.Done():
			return meta, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Members lists every registrar gossip knows, sorted by name.
func (h *Handlespace) Members() []Member { return h.members.Members() }

// SyncMember exchanges gossip state with the member id at once (a
// push/pull, as a join does), so that what this registrar knows of it,
// its addresses in particular, is fresh: a member that restarted on the
// same gossip address may be known by its old metadata until its
// refutation reaches us.
func (h *Handlespace) SyncMember(id uint32) error { return h.members.syncMember(id) }

// GossipKeys lists this registrar's gossip keyring.
func (h *Handlespace) GossipKeys() ([]KeyInfo, error) { return h.members.Keys() }

// ChangeGossipKey installs, uses or removes a gossip key on this
// registrar (see Membership.ChangeKey).
func (h *Handlespace) ChangeGossipKey(op KeyOp, key string) error {
	return h.members.ChangeKey(op, key)
}

// GossipAddr is this registrar's gossip address.
func (h *Handlespace) GossipAddr() string { return h.members.LocalAddr() }

// Leave leaves the cluster for good: leadership moves away first, gossip
// broadcasts the leave (bounded by 5 s), then it waits (bounded by 10 s)
// until the leader removed this registrar from raft, so that a quick
// shutdown does not leave the cluster one voter short. The error is the
// gossip leave's (the wait follows it anyway). Close still has to be
// called.
func (h *Handlespace) Leave() error {
	err := h.members.Leave(5 * time.Second)
	h.waitRemoved()
	return err
}

// waitRemoved waits (bounded) until the leader removed this registrar
// from raft after a leave.
func (h *Handlespace) waitRemoved() {
	deadline := time.Now().Add(10 * time.Second)
	me := ServerID(h.cfg.ID)
	for time.Now().Before(deadline) {
		f := h.node.raft.GetConfiguration()
		if f.Error() != nil {
			return
		}
		found := false
		for _, s := range f.Configuration().Servers {
			found = found || s.ID == me
		}
		if !found || len(f.Configuration().Servers) == 1 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.log.Warn("left gossip but the leader did not remove this registrar from raft in time")
}
