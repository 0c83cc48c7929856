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
			m.health = healthTracker{} // a new term judges health afresh
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
	if has, err := m.node.hasState(); err != nil || has {
		return
	}
	m.mu.Lock()
	var servers []raft.Server
	refuse := ""
	for _, mb := range m.members {
		if mb.Status != StatusAlive {
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
// What to do is decided by plan, from a snapshot of the facts; reconcile
// only gathers them and carries the actions out.
func (m *Membership) reconcile(leaderFor time.Duration) {
	defer m.reconciled.Add(1)
	cf := m.node.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	servers := cf.Configuration().Servers
	members := m.Members()
	in := reconcileInput{
		self:      m.node.cfg.ID,
		servers:   servers,
		members:   members,
		owners:    m.node.store.Owners(),
		isForeign: m.cfg.IsForeign,
		graceOver: leaderFor >= m.cfg.TakeoverGrace,
		voters:    m.cfg.Voters,
		healthy:   m.health.observe(m.node, m.cfg.Autopilot, servers, members, time.Now()),
		stable:    m.cfg.Autopilot.StabilizationTime,
	}
	for _, a := range plan(in) {
		if err := m.carryOut(a); err != nil && a.kind == actionPromote {
			return // no demotion without the promotion that replaces it
		}
	}
}

// carryOut performs one action of the plan; a failure is logged and the
// next round plans again.
func (m *Membership) carryOut(a action) error {
	var err error
	switch a.kind {
	case actionHold:
		m.log.Warn(a.reason, "old", a.server, "new", a.newServer)
	case actionRemoveServer:
		if a.newServer != "" {
			m.log.Info(a.reason, "old", a.server, "new", a.newServer, "address", a.address)
		} else {
			m.log.Info(a.reason, "id", a.server)
		}
		if err = m.node.raft.RemoveServer(a.server, 0, 5*time.Second).Error(); err != nil {
			m.log.Warn("remove server failed", "id", a.server, "error", err)
		}
	case actionAddVoter:
		if err := probeRaft(string(a.address), m.node.cfg.Raft.TLS); err != nil {
			m.log.Warn("not adding registrar as raft voter: its raft port refused our TLS handshake", "id", a.server, "raft", a.address, "error", err)
			return err
		}
		m.log.Info("adding registrar as raft voter", "id", a.server, "raft", a.address)
		if err = m.node.raft.AddVoter(a.server, a.address, 0, 5*time.Second).Error(); err != nil {
			m.log.Warn("add voter failed", "id", a.server, "error", err)
		}
	case actionAddNonvoter:
		if err := probeRaft(string(a.address), m.node.cfg.Raft.TLS); err != nil {
			m.log.Warn("not adding registrar as raft non-voter: its raft port refused our TLS handshake", "id", a.server, "raft", a.address, "error", err)
			return err
		}
		m.log.Info("adding registrar as raft non-voter", "id", a.server, "raft", a.address, "voters", m.cfg.Voters)
		if err = m.node.raft.AddNonvoter(a.server, a.address, 0, 5*time.Second).Error(); err != nil {
			m.log.Warn("add non-voter failed", "id", a.server, "error", err)
		}
	case actionPromote:
		m.log.Info(a.reason, "id", a.server, "raft", a.address)
		if err = m.node.raft.AddVoter(a.server, a.address, 0, 5*time.Second).Error(); err != nil {
			m.log.Warn("promotion to voter failed", "id", a.server, "error", err)
		}
	case actionDemote:
		m.log.Info(a.reason, "id", a.server)
		if err = m.node.raft.DemoteVoter(a.server, 0, 5*time.Second).Error(); err != nil {
			m.log.Warn("demotion to non-voter failed", "id", a.server, "error", err)
		}
	case actionTakeover:
		n := len(m.node.store.Owned(a.owner))
		m.log.Info("taking over the PEs of a registrar that is gone", "registrar", ServerID(a.owner), "pes", n,
			"new-homes", len(a.newHomes), "gossip-status", a.status)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := m.node.Propose(ctx, NewTakeover(time.Now(), m.node.cfg.ID, a.owner, a.newHomes))
		cancel()
		if err == nil {
			err = res.Failed()
		}
		if err != nil {
			m.log.Warn("takeover failed", "registrar", ServerID(a.owner), "error", err)
		}
	}
	return err
}

// reconcileInput is what the leader knows when it reconciles.
type reconcileInput struct {
	self      uint32        // this registrar (never removes itself)
	servers   []raft.Server // raft's configuration
	members   []Member      // gossip's view
	owners    []uint32      // the home registrars of the handlespace's PEs
	isForeign func(id uint32) bool
	graceOver bool // led for TakeoverGrace: owners gossip does not know are gone
	// voters is how many voters the cluster keeps (MembershipConfig.Voters).
	voters int
	// healthy holds, for each non-voter the leader found healthy (in touch
	// with it and caught up: see Autopilot), how long it has been so.
	healthy map[raft.ServerID]time.Duration
	stable  time.Duration // how long a non-voter is healthy before it is promoted
}

// actionKind is one step of a reconcile plan.
type actionKind uint8

const (
	actionAddVoter     actionKind = iota + 1 // make server a voter at address
	actionRemoveServer                       // remove server from raft
	actionTakeover                           // commit a takeover of owner's PEs by newHomes
	actionHold                               // a removal that would lose quorum: log reason only
	actionAddNonvoter                        // make server a non-voter at address
	actionPromote                            // make non-voter server a voter
	actionDemote                             // make voter server a non-voter
)

// action is one step of a reconcile plan.
type action struct {
	kind      actionKind
	server    raft.ServerID      // add, remove, promote, demote, hold
	address   raft.ServerAddress // add, promote; the stale server's address
	newServer raft.ServerID      // remove or hold of a stale server: the registrar replacing it
	owner     uint32             // takeover
	newHomes  []uint32           // takeover: the live registrars, sorted
	status    MemberStatus       // takeover: what gossip says of owner (0: unknown)
	reason    string             // for the log
}

// plan decides what the leader does to make raft follow gossip, in order:
//
//  1. every alive registrar that is not a raft server joins raft: as a
//     voter while there are fewer than voters voters, else as a
//     non-voter; a server that is not alive and holds its raft address (a
//     registrar whose data dir was wiped came back under a new ID) is
//     removed first;
//  2. registrars that left on purpose are removed;
//  3. while fewer than voters voters are alive, healthy non-voters that
//     have been so for stable are promoted, in ID order (Consul
//     autopilot's rule; the leader judges health: see Autopilot);
//  4. while there are more voters than voters, voters that are not alive
//     are demoted to non-voters first, then alive ones, highest ID first
//     (never the leader itself);
//  5. the PEs of owners that are gone (failed or left, or unknown to
//     gossip once graceOver) get new homes among the alive registrars,
//     unless the owner is alive or a foreign ENRP registrar.
//
// No removal or demotion takes the voters below a quorum of alive ones:
// each is checked against the configuration as the removals and
// demotions before it left it (additions and promotions do not count: an
// AddVoter may fail, and reconcile stops at a failed promotion). A stale
// server that cannot be removed safely gives an actionHold; a registrar
// that left and cannot be removed is kept silently, as are registrars
// that are neither. plan is pure: the same input gives the same actions.
func plan(in reconcileInput) []action {
	members := slices.Clone(in.members)
	slices.SortFunc(members, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	alive := map[uint32]Member{}
	status := map[uint32]MemberStatus{}
	for _, mb := range members {
		if status[mb.Meta.ID] != StatusAlive {
			status[mb.Meta.ID] = mb.Status
		}
		if mb.Status == StatusAlive {
			alive[mb.Meta.ID] = mb
		}
	}
	aliveIDs := make([]uint32, 0, len(alive))
	for id := range alive {
		aliveIDs = append(aliveIDs, id)
	}
	slices.Sort(aliveIDs)
	servers := slices.Clone(in.servers) // as the removals and demotions planned so far leave it
	slices.SortFunc(servers, func(a, b raft.Server) int { return cmp.Compare(a.ID, b.ID) })
	remove := func(id raft.ServerID) {
		servers = slices.DeleteFunc(servers, func(s raft.Server) bool { return s.ID == id })
	}
	isServer := func(id raft.ServerID) bool {
		return slices.ContainsFunc(servers, func(s raft.Server) bool { return s.ID == id })
	}
	setSuffrage := func(id raft.ServerID, sf raft.ServerSuffrage) {
		for i := range servers {
			if servers[i].ID == id {
				servers[i].Suffrage = sf
			}
		}
	}
	countVoters := func() int {
		n := 0
		for _, s := range servers {
			if s.Suffrage == raft.Voter {
				n++
			}
		}
		return n
	}
	added := 0 // voters planned to be added or promoted (not in servers: they may fail)
	var out []action

	for _, id := range aliveIDs {
		mb, sid := alive[id], ServerID(id)
		if isServer(sid) {
			continue
		}
		for _, s := range slices.Clone(servers) {
			if string(s.Address) != mb.Meta.Raft || s.ID == sid {
				continue
			}
			if old, _ := ParseServerID(s.ID); alive[old].Status != 0 {
				continue // a live registrar: not stale
			}
			if !safeToRemove(servers, alive, s.ID) {
				out = append(out, action{kind: actionHold, server: s.ID, newServer: sid, address: s.Address,
					reason: "cannot replace stale raft server without losing quorum"})
				continue
			}
			out = append(out, action{kind: actionRemoveServer, server: s.ID, newServer: sid, address: s.Address,
				reason: "removing stale raft server at the same address"})
			remove(s.ID)
		}
		kind := actionAddNonvoter
		if countVoters()+added < in.voters {
			kind = actionAddVoter
			added++
		}
		out = append(out, action{kind: kind, server: sid, address: raft.ServerAddress(mb.Meta.Raft)})
	}

	for _, s := range slices.Clone(servers) {
		id, err := ParseServerID(s.ID)
		if err != nil || status[id] != StatusLeft || id == in.self {
			continue
		}
		if !safeToRemove(servers, alive, s.ID) {
			continue
		}
		out = append(out, action{kind: actionRemoveServer, server: s.ID, address: s.Address, reason: "removing registrar that left"})
		remove(s.ID)
	}

	liveVoters := 0
	for _, s := range servers {
		if id, err := ParseServerID(s.ID); err == nil && s.Suffrage == raft.Voter {
			if _, ok := alive[id]; ok {
				liveVoters++
			}
		}
	}
	for _, s := range servers {
		if liveVoters+added >= in.voters {
			break
		}
		id, err := ParseServerID(s.ID)
		if err != nil || s.Suffrage != raft.Nonvoter {
			continue
		}
		if _, ok := alive[id]; !ok {
			continue
		}
		if d, ok := in.healthy[s.ID]; !ok || d < in.stable {
			continue
		}
		out = append(out, action{kind: actionPromote, server: s.ID, address: s.Address,
			reason: "promoting healthy non-voter to voter"})
		added++
	}

	// Demotions: the voters not alive first, then the alive ones from the
	// highest ID, while more than voters remain counting the promotions.
	var demotable []raft.Server
	for _, dead := range []bool{true, false} {
		for i := len(servers) - 1; i >= 0; i-- {
			s := servers[i]
			id, err := ParseServerID(s.ID)
			if err != nil || s.Suffrage != raft.Voter || id == in.self {
				continue
			}
			if _, ok := alive[id]; ok == dead {
				continue
			}
			demotable = append(demotable, s)
		}
	}
	for _, s := range demotable {
		if countVoters()+added <= in.voters {
			break
		}
		if !safeToRemove(servers, alive, s.ID) {
			continue
		}
		reason := "demoting a voter over the configured number of voters"
		if id, _ := ParseServerID(s.ID); alive[id].Status == 0 {
			reason = "demoting a voter that is not alive: another voter replaces it"
		}
		out = append(out, action{kind: actionDemote, server: s.ID, reason: reason})
		setSuffrage(s.ID, raft.Nonvoter)
	}

	if len(aliveIDs) == 0 {
		return out
	}
	for _, owner := range in.owners {
		if _, ok := alive[owner]; ok {
			continue
		}
		if in.isForeign != nil && in.isForeign(owner) {
			continue
		}
		st, known := status[owner]
		gone := st == StatusFailed || st == StatusLeft || (!known && in.graceOver)
		if !gone {
			continue
		}
		out = append(out, action{kind: actionTakeover, owner: owner, newHomes: slices.Clone(aliveIDs), status: st})
	}
	return out
}

// safeToRemove reports whether removing id keeps a majority of the
// remaining voters alive.
func safeToRemove(servers []raft.Server, alive map[uint32]Member, id raft.ServerID) bool {
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
