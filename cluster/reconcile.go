package cluster

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// reconcileLoop runs on every node; it acts when this node leads (and,
// before a cluster exists, to bootstrap it).
func (m *Membership) reconcileLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.ReconcileInterval)
	defer t.Stop()
	var leaderSince time.Time // zero while not leading
	for {
		select {
		case <-m.quit:
			return
		case <-t.C:
		case <-m.kick:
		}
		m.maybeBootstrap()
		if !m.node.IsLeader() {
			leaderSince = time.Time{}
			continue
		}
		if leaderSince.IsZero() {
			leaderSince = time.Now()
		}
		m.reconcile(time.Since(leaderSince))
	}
}

// maybeBootstrap forms a new cluster once BootstrapExpect registrars see
// each other, all expecting the same size and none with raft state. Each
// bootstraps with the same configuration, so the order does not matter.
func (m *Membership) maybeBootstrap() {
	n := m.cfg.BootstrapExpect
	if n == 0 {
		return
	}
	if has, err := raft.HasExistingState(m.node.wal, m.node.logs, m.node.snaps); err != nil || has {
		return
	}
	m.mu.Lock()
	var servers []raft.Server
	refuse := ""
	for _, mb := range m.members {
		if mb.Status != "alive" {
			continue
		}
		switch {
		case mb.Meta.State:
			refuse = mb.Name + " already has raft state (it belongs to a cluster: join it instead)"
		case mb.Meta.Expect != n:
			refuse = mb.Name + " expects a different cluster size"
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: ServerID(mb.Meta.ID), Address: raft.ServerAddress(mb.Meta.Raft)})
	}
	m.mu.Unlock()
	if refuse != "" {
		m.log.Warn("not bootstrapping", "reason", refuse)
		return
	}
	if len(servers) < n {
		return
	}
	slices.SortFunc(servers, func(a, b raft.Server) int { return cmp.Compare(a.ID, b.ID) })
	if err := m.node.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && err != raft.ErrCantBootstrap {
		m.log.Error("bootstrap failed", "error", err)
		return
	}
	m.log.Info("bootstrapped a new cluster", "servers", len(servers))
}

// reconcile makes raft's configuration follow gossip and takes over the
// PEs of registrars that are gone; leaderFor is how long this node leads.
func (m *Membership) reconcile(leaderFor time.Duration) {
	cf := m.node.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	servers := cf.Configuration().Servers
	m.mu.Lock()
	members := make([]Member, 0, len(m.members))
	for _, mb := range m.members {
		members = append(members, *mb)
	}
	m.mu.Unlock()

	alive := map[uint32]Member{}
	status := map[uint32]string{}
	for _, mb := range members {
		status[mb.Meta.ID] = mb.Status
		if mb.Status == "alive" {
			alive[mb.Meta.ID] = mb
		}
	}
	inRaft := map[raft.ServerID]raft.Server{}
	for _, s := range servers {
		inRaft[s.ID] = s
	}

	// Alive registrars become voters. A stale server holding the same
	// raft address (a registrar whose data dir was wiped comes back with
	// a new ID) is removed first, if it is not alive itself.
	for id, mb := range alive {
		sid := ServerID(id)
		if _, ok := inRaft[sid]; ok {
			continue
		}
		for _, s := range servers {
			if string(s.Address) == mb.Meta.Raft && s.ID != sid {
				old, _ := ParseServerID(s.ID)
				if _, isAlive := alive[old]; isAlive {
					continue
				}
				if !m.safeToRemove(servers, alive, s.ID) {
					m.log.Warn("cannot replace stale raft server without losing quorum", "old", s.ID, "new", sid)
					continue
				}
				m.log.Info("removing stale raft server at the same address", "old", s.ID, "new", sid, "address", s.Address)
				if err := m.node.raft.RemoveServer(s.ID, 0, 5*time.Second).Error(); err != nil {
					m.log.Warn("remove stale server failed", "id", s.ID, "error", err)
				}
			}
		}
		m.log.Info("adding registrar as raft voter", "id", sid, "raft", mb.Meta.Raft)
		if err := m.node.raft.AddVoter(sid, raft.ServerAddress(mb.Meta.Raft), 0, 5*time.Second).Error(); err != nil {
			m.log.Warn("add voter failed", "id", sid, "error", err)
		}
	}

	// Registrars that left on purpose are removed from raft (never below
	// a quorum of the remaining alive voters).
	for _, s := range servers {
		id, err := ParseServerID(s.ID)
		if err != nil || status[id] != "left" || s.ID == ServerID(m.node.cfg.ID) {
			continue
		}
		if !m.safeToRemove(servers, alive, s.ID) {
			continue
		}
		m.log.Info("removing registrar that left", "id", s.ID)
		if err := m.node.raft.RemoveServer(s.ID, 0, 5*time.Second).Error(); err != nil {
			m.log.Warn("remove server failed", "id", s.ID, "error", err)
		}
	}

	// Take over the PEs of registrars that are gone.
	var owners []uint32
	for id := range alive {
		owners = append(owners, id)
	}
	slices.Sort(owners)
	if len(owners) == 0 {
		return
	}
	for _, owner := range m.node.store.Owners() {
		if _, ok := alive[owner]; ok {
			continue
		}
		if m.cfg.IsForeign != nil && m.cfg.IsForeign(owner) {
			continue
		}
		st, known := status[owner]
		gone := st == "failed" || st == "left"
		if !known && leaderFor >= m.cfg.TakeoverGrace {
			gone = true // neither gossip nor raft knows it any more
		}
		if !gone {
			continue
		}
		n := len(m.node.store.Owned(owner))
		m.log.Info("taking over the PEs of a registrar that is gone", "registrar", ServerID(owner), "pes", n, "new-homes", len(owners), "gossip-status", st)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := m.node.Propose(ctx, NewTakeover(time.Now(), m.node.cfg.ID, owner, owners))
		cancel()
		if err == nil {
			err = res.Failed()
		}
		if err != nil {
			m.log.Warn("takeover failed", "registrar", ServerID(owner), "error", err)
		}
	}
}

// safeToRemove reports whether removing id keeps a majority of the
// remaining voters alive.
func (m *Membership) safeToRemove(servers []raft.Server, alive map[uint32]Member, id raft.ServerID) bool {
	voters, up := 0, 0
	for _, s := range servers {
		if s.Suffrage != raft.Voter || s.ID == id {
			continue
		}
		voters++
		if v, err := ParseServerID(s.ID); err == nil {
			if _, ok := alive[v]; ok {
				up++
			}
		}
	}
	return voters > 0 && up > voters/2
}
