package registrar

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/store"
	"github.com/rserpool-go/registrar/transport"
)

// ENRP peering with registrars that are not members of this cluster
// (RSPLIB's rspregistrar, or another cluster): RFC 5353 on the wire. Each
// of our registrars peers on its own behalf, with its own server ID and
// the PEs it is home for; what it learns from a peer enters the
// handlespace through raft, homed at that peer.

// foreignPeer is one ENRP peer outside the cluster.
type foreignPeer struct {
	id     uint32 // 0 until the peer identified itself
	addr   string // ENRP address spec to dial
	static bool
	// removed: a reload dropped this static peer (a dial that completes
	// afterwards closes its association).
	removed bool
	conn    *enrpConn // our association to it (nil: not connected)
	// inbound is an association the peer opened to our ENRP port. RSPLIB
	// only accepts a PRESENCE whose ENRP port is the association's port,
	// so messages to the peer prefer it over ours (whose local port is
	// ephemeral).
	inbound *enrpConn

	lastHeard time.Time
	probeAt   time.Time // PRESENCE R=1 sent (zero: not probing)
	nextBeat  time.Time
	checksum  uint16
	dialing   bool

	// Handle table sync (W=1) in progress.
	syncing    bool
	syncPEs    map[peKey]store.PE
	syncRounds int
	syncStart  time.Time
}

// takeover is a takeover of a dead peer we initiated.
type takeover struct {
	target  uint32
	waitFor map[uint32]bool // peers whose INIT_TAKEOVER_ACK is missing
	expires time.Time
}

// peers runs ENRP peering.
type peers struct {
	r   *Registrar
	mu  sync.Mutex
	all []*foreignPeer
	// takeovers we run, by target; acked: targets another server takes
	// over (we acknowledged its INIT_TAKEOVER).
	takeovers map[uint32]*takeover
	acked     map[uint32]uint32
	// refreshed: when each foreign PE was last confirmed by its owner
	// (PEs learnt by ENRP expire after their registration life).
	refreshed map[peKey]time.Time
	wake      chan struct{}
	// outbox holds our HANDLE_UPDATEs in commit order; run sends them
	// (the FSM's observer must not do network I/O).
	outbox chan *enrp.HandleUpdate
}

func newPeers(r *Registrar) *peers {
	p := &peers{r: r, takeovers: map[uint32]*takeover{}, acked: map[uint32]uint32{}, refreshed: map[peKey]time.Time{},
		wake: make(chan struct{}, 1), outbox: make(chan *enrp.HandleUpdate, 4096)}
	for _, a := range r.cfg.ENRPPeers {
		p.all = append(p.all, &foreignPeer{addr: a, static: true})
	}
	return p
}

// isForeign tells the cluster layer which owners are ENRP peers (their
// PEs are not taken over by the cluster's reconcile loop).
func (p *peers) isForeign(id uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fp := range p.all {
		if fp.id == id {
			return true
		}
	}
	return false
}

// isMember reports registrars of our own cluster (gossip knows them).
func (p *peers) isMember(id uint32) bool { return slices.Contains(p.memberIDs(), id) }

// memberIDs lists the registrars of our own cluster: this one and those
// gossip knows.
func (p *peers) memberIDs() []uint32 {
	ids := []uint32{p.r.id}
	if p.r.members != nil {
		for _, m := range p.r.members.Members() {
			ids = append(ids, m.Meta.ID)
		}
	}
	return ids
}

// jitter is safe for concurrent use: the peering loop and the multicast
// sender both call it.
func (p *peers) jitter(d time.Duration) time.Duration {
	// RSPLIB jitters its heartbeat by ±12.5 %.
	return time.Duration(float64(d) * (0.875 + 0.25*rand.Float64()))
}

// peerLocked finds or adds the peer with this ID (learning its address
// from its Server Information).
func (p *peers) peerLocked(id uint32, si *asap.ServerInfo) *foreignPeer {
	for _, fp := range p.all {
		if fp.id == id {
			if si != nil && fp.addr == "" {
				fp.addr = serverInfoSpec(si)
			}
			return fp
		}
	}
	if si != nil {
		addr := serverInfoSpec(si)
		for _, fp := range p.all {
			if fp.id == 0 && fp.static && sameEndpoint(fp.addr, addr) {
				fp.id = id
				return fp
			}
		}
		fp := &foreignPeer{id: id, addr: addr}
		p.all = append(p.all, fp)
		p.r.log.Info("new ENRP peer", "peer", hexID(id), "address", addr)
		return fp
	}
	return nil
}

// serverInfoSpec turns a Server Information parameter into a dial spec
// (SCTP where the kernel has it, else TCP: our TCP transport carries ENRP
// on the same port).
func serverInfoSpec(si *asap.ServerInfo) string {
	var as []netip.Addr
	for _, a := range si.Transport.Addrs {
		// Link-local addresses need a zone we do not know.
		if !a.IsUnspecified() && !a.IsLinkLocalUnicast() {
			as = append(as, a)
		}
	}
	if len(as) == 0 || si.Transport.Port == 0 {
		return ""
	}
	return transport.HostList(as) + ":" + strconv.Itoa(int(si.Transport.Port))
}

func sameEndpoint(a, b string) bool {
	sa, err1 := transport.ParseSpec(a)
	sb, err2 := transport.ParseSpec(b)
	if err1 != nil || err2 != nil || sa.Port != sb.Port {
		return false
	}
	for _, x := range sa.Hosts {
		for _, y := range sb.Hosts {
			if x == y {
				return true
			}
		}
	}
	return false
}

// run is the peering loop: heartbeats, probes, dead-peer detection,
// takeovers, foreign PE expiry, multicast PRESENCE.
func (p *peers) run() {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	nextExpiry := time.Now()
	for {
		select {
		case <-p.r.quit:
			return
		case <-tick.C:
		case <-p.wake:
		case u := <-p.outbox:
			p.send(u)
			continue
		}
		now := time.Now()
		p.heartbeat(now)
		p.finishTakeovers(now)
		if now.After(nextExpiry) {
			p.expireForeign(now)
			nextExpiry = now.Add(time.Second)
		}
	}
}

func (p *peers) heartbeat(now time.Time) {
	cfg := p.r.cfg
	type action struct {
		fp    *foreignPeer
		id    uint32 // fp.id, read under the lock (peerLocked sets it)
		probe bool
	}
	var sends []action
	var dead []action
	var dials []*foreignPeer
	p.mu.Lock()
	for _, fp := range p.all {
		if fp.conn == nil && !fp.dialing && fp.addr != "" {
			fp.dialing = true
			dials = append(dials, fp)
		}
		if fp.lastHeard.IsZero() && fp.id != 0 {
			fp.lastHeard = now
		}
		switch {
		case fp.id != 0 && !fp.probeAt.IsZero() && now.Sub(fp.probeAt) > cfg.MaxTimeNoResponse.D():
			dead = append(dead, action{fp, fp.id, true})
		case fp.id != 0 && fp.probeAt.IsZero() && now.Sub(fp.lastHeard) > cfg.MaxTimeLastHeard.D():
			fp.probeAt = now
			sends = append(sends, action{fp, fp.id, true})
		case !now.Before(fp.nextBeat):
			fp.nextBeat = now.Add(p.jitter(cfg.PeerHeartbeat.D()))
			sends = append(sends, action{fp, fp.id, false})
		}
	}
	p.mu.Unlock()
	for _, fp := range dials {
		fp := fp
		p.r.goFunc(func() { p.dial(fp) })
	}
	for _, a := range sends {
		p.sendTo(a.fp, p.r.presence(a.id, a.probe))
	}
	for _, a := range dead {
		p.peerDead(a.fp, a.id, now)
	}
}

// dial opens our association to a peer and serves it.
func (p *peers) dial(fp *foreignPeer) {
	defer func() {
		p.mu.Lock()
		fp.dialing = false
		p.mu.Unlock()
	}()
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDENRP
	cfg.WriteTimeout = 5 * time.Second
	cfg.Logger = p.r.log.Named("enrp")
	p.mu.Lock()
	addr := fp.addr // a reload may make a learnt peer static
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	c, err := p.r.net.Dial(ctx, addr, cfg)
	cancel()
	if err != nil {
		p.r.log.Debug("cannot reach ENRP peer", "address", addr, "error", err)
		select {
		case <-p.r.quit:
		case <-time.After(time.Second):
		}
		return
	}
	ec := &enrpConn{r: p.r, c: c, next: map[tableKey]store.Cursor{}}
	p.mu.Lock()
	if fp.removed {
		p.mu.Unlock()
		c.Close()
		return
	}
	fp.conn = ec
	fp.nextBeat = time.Time{}
	id := fp.id // read under the lock: peerLocked sets it
	p.mu.Unlock()
	p.r.log.Info("connected to ENRP peer", "address", addr, "peer", hexID(id))
	// Say hello: our PRESENCE (reply required) and ask for its peers.
	p.sendTo(fp, p.r.presence(id, true))
	p.sendTo(fp, &enrp.ListRequest{Header: enrp.Header{Sender: p.r.id, Receiver: id}})
	p.r.serveENRPConn(ec)
	p.mu.Lock()
	if fp.conn == ec {
		fp.conn = nil
	}
	p.mu.Unlock()
}

// connClosed forgets an association that ended.
func (p *peers) connClosed(ec *enrpConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fp := range p.all {
		if fp.inbound == ec {
			fp.inbound = nil
		}
		if fp.conn == ec {
			fp.conn = nil
		}
	}
}

// sendTo sends a message to a peer: on the association it opened to our
// ENRP port if there is one, else on ours. It reports whether the peer
// had an association to send on.
func (p *peers) sendTo(fp *foreignPeer, m enrp.Message) bool {
	p.mu.Lock()
	ec := fp.conn
	if fp.inbound != nil {
		ec = fp.inbound
	}
	m.IDs().Receiver = fp.id
	p.mu.Unlock()
	if ec != nil {
		ec.send(m)
	}
	return ec != nil
}

// broadcast sends a message to every connected peer and returns how many
// it went to.
func (p *peers) broadcast(m func(receiver uint32) enrp.Message) int {
	p.mu.Lock()
	fps := append([]*foreignPeer(nil), p.all...)
	p.mu.Unlock()
	n := 0
	for _, fp := range fps {
		if p.sendTo(fp, m(fp.id)) {
			n++
		}
	}
	return n
}

// heard records traffic from a peer on association ec.
func (p *peers) heard(ec *enrpConn, id uint32, si *asap.ServerInfo) *foreignPeer {
	if id == 0 || p.isMember(id) {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fp := p.peerLocked(id, si)
	if fp == nil {
		return nil
	}
	if ec != nil && ec.inbound {
		fp.inbound = ec
	}
	fp.lastHeard = time.Now()
	fp.probeAt = time.Time{}
	// Any sign of life cancels our takeover of it.
	if t, ok := p.takeovers[id]; ok {
		p.r.log.Info("ENRP peer is alive: takeover abandoned", "peer", hexID(id))
		delete(p.takeovers, t.target)
	}
	delete(p.acked, id)
	return fp
}

// onPresence handles ENRP_PRESENCE from a peer.
func (p *peers) onPresence(ec *enrpConn, m *enrp.Presence) {
	fp := p.heard(ec, m.Sender, &m.ServerInfo)
	if fp == nil {
		return
	}
	if m.ReplyRequired {
		ec.send(p.r.presence(m.Sender, false))
	}
	p.mu.Lock()
	fp.checksum = m.Checksum
	syncing := fp.syncing
	p.mu.Unlock()
	if !syncing && m.Checksum != p.r.store.Checksum(m.Sender) {
		p.r.log.Info("PE checksum differs: resynchronising the peer's handle table", "peer", hexID(m.Sender),
			"theirs", fmt.Sprintf("0x%04x", m.Checksum), "ours", fmt.Sprintf("0x%04x", p.r.store.Checksum(m.Sender)))
		p.startSync(fp)
	}
}

// startSync asks a peer for the PEs it owns (W=1), page by page.
func (p *peers) startSync(fp *foreignPeer) {
	p.mu.Lock()
	if fp.syncing {
		p.mu.Unlock()
		return
	}
	fp.syncing, fp.syncPEs, fp.syncRounds, fp.syncStart = true, map[peKey]store.PE{}, 0, time.Now()
	p.mu.Unlock()
	p.sendTo(fp, &enrp.HandleTableRequest{Header: enrp.Header{Sender: p.r.id}, OwnOnly: true})
}

// maxSyncRounds bounds handle table paging (RSPLIB can loop forever with
// small page limits).
const maxSyncRounds = 10000

// onTable handles a HANDLE_TABLE_RESPONSE to our W=1 request.
func (p *peers) onTable(ec *enrpConn, m *enrp.HandleTableResponse) {
	p.mu.Lock()
	var fp *foreignPeer
	for _, x := range p.all {
		if x.id == m.Sender && x.syncing {
			fp = x
		}
	}
	if fp == nil {
		p.mu.Unlock()
		return
	}
	if m.Reject {
		fp.syncing = false
		p.mu.Unlock()
		p.r.log.Warn("ENRP peer refused our handle table request", "peer", hexID(m.Sender))
		return
	}
	now := time.Now()
	for _, pool := range m.Pools {
		for _, pe := range pool.PEs {
			if pe.Home != m.Sender { // W=1: only its own PEs count
				continue
			}
			pe.Policy = p.r.withDistance(pe.Policy, ec.c, pe.Policy.Distance)
			fp.syncPEs[peKey{pool.PoolHandle, pe.ID}] = store.PE{Handle: pool.PoolHandle, Element: pe, Registered: now.UnixNano()}
		}
	}
	fp.syncRounds++
	more := m.More && fp.syncRounds < maxSyncRounds
	if more {
		p.mu.Unlock()
		p.sendTo(fp, &enrp.HandleTableRequest{Header: enrp.Header{Sender: p.r.id}, OwnOnly: true})
		return
	}
	got := fp.syncPEs
	fp.syncing, fp.syncPEs = false, nil
	owner := fp.id
	p.mu.Unlock()
	p.r.goFunc(func() { p.applyTable(owner, got) })
}

// applyTable makes the handlespace hold exactly the PEs a peer owns: one
// raft command with the additions and removals.
func (p *peers) applyTable(owner uint32, table map[peKey]store.PE) {
	now := time.Now()
	cmd := cluster.Command{Kind: cluster.KindBatch, Time: now}
	for _, pe := range p.r.store.Owned(owner) {
		key := peKey{pe.Handle, pe.Element.ID}
		if got, ok := table[key]; ok && samePE(&got.Element, &pe.Element) {
			delete(table, key)
			continue
		}
		if _, ok := table[key]; !ok {
			cmd.Updates = append(cmd.Updates, &enrp.HandleUpdate{Header: enrp.Header{Sender: owner}, Action: enrp.DelPE, PoolHandle: pe.Handle, PoolElement: pe.Element})
		}
	}
	p.mu.Lock()
	for key, pe := range table {
		cmd.Updates = append(cmd.Updates, &enrp.HandleUpdate{Header: enrp.Header{Sender: owner}, Action: enrp.AddPE, PoolHandle: pe.Handle, PoolElement: pe.Element})
		p.refreshed[key] = now
	}
	p.mu.Unlock()
	if len(cmd.Updates) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.r.cfg.WriteTimeout.D()*2)
	defer cancel()
	res, err := p.r.node.Propose(ctx, cmd)
	if err == nil {
		err = res.Failed()
	}
	if err != nil {
		p.r.log.Warn("handle table of ENRP peer not fully applied", "peer", hexID(owner), "error", err)
		return
	}
	p.r.log.Info("handle table synchronised with ENRP peer", "peer", hexID(owner), "changes", len(cmd.Updates))
}

// onUpdate handles a HANDLE_UPDATE from a peer: its PE enters (or leaves)
// our handlespace through raft, homed at the peer.
func (p *peers) onUpdate(ec *enrpConn, m *enrp.HandleUpdate) {
	p.r.metrics.handleUpdates.WithLabelValues("received").Inc()
	if p.heard(ec, m.Sender, nil) == nil {
		return
	}
	pe := m.PoolElement
	if p.isMember(pe.Home) {
		return // ours: we know better
	}
	pe.Policy = p.r.withDistance(pe.Policy, ec.c, pe.Policy.Distance)
	key := peKey{m.PoolHandle, pe.ID}
	cur, exists := p.r.store.Lookup(m.PoolHandle, pe.ID)
	if m.Action == enrp.AddPE {
		p.mu.Lock()
		p.refreshed[key] = time.Now()
		p.mu.Unlock()
		if exists && samePE(&cur.Element, &pe) {
			return // a refresh: no raft write
		}
		if exists && p.isMember(cur.Element.Home) {
			return // one of ours: RSPLIB re-announces PEs it lost
		}
	} else {
		p.mu.Lock()
		delete(p.refreshed, key)
		p.mu.Unlock()
		if !exists || cur.Element.Home != pe.Home {
			return
		}
		pe = cur.Element
	}
	p.r.goFunc(func() {
		if err := p.r.commit(context.Background(), cluster.NewUpdate(time.Now(), m.Action, m.Sender, m.PoolHandle, pe)); err != nil {
			p.r.log.Warn("handle update from ENRP peer not applied", "peer", hexID(m.Sender), "pool", m.PoolHandle,
				"pe", fmt.Sprintf("%08x", pe.ID), "error", err)
		}
	})
}

// announce queues, for every peer, a change of a PE homed here (ADD_PE for
// registrations and re-registrations, DEL_PE for removals). It never
// blocks: a full queue drops the update, and the peers' checksum check
// repairs their tables.
func (p *peers) announce(action enrp.UpdateAction, h asap.PoolHandle, pe asap.PoolElement) {
	p.mu.Lock()
	n := len(p.all)
	p.mu.Unlock()
	if n == 0 {
		return
	}
	pe.ASAP = enrpASAPTransport(pe.ASAP)
	select {
	case p.outbox <- &enrp.HandleUpdate{Header: enrp.Header{Sender: p.r.id}, Action: action, PoolHandle: h, PoolElement: pe}:
	default:
		p.r.log.Warn("ENRP update queue full: peers resynchronise by checksum", "pool", h, "pe", fmt.Sprintf("%08x", pe.ID))
	}
}

// send delivers one queued update to every peer.
func (p *peers) send(u *enrp.HandleUpdate) {
	n := p.broadcast(func(rcv uint32) enrp.Message {
		m := *u
		m.Receiver = rcv
		return &m
	})
	p.r.metrics.handleUpdates.WithLabelValues("sent").Add(float64(n))
}

// enrpASAPTransport: RSPLIB requires the ASAP transport in ENRP messages
// to be SCTP with transport use 0.
func enrpASAPTransport(t asap.Transport) asap.Transport {
	if t.IsZero() {
		return t
	}
	t.Use = asap.UseData
	return t
}

// committed observes our own changes to tell the peers.
func (p *peers) committed(cmd *cluster.Command, res *cluster.ApplyResult) {
	if cmd.Kind != cluster.KindUpdate || res == nil || res.Failed() != nil {
		return
	}
	u := cmd.Updates[0]
	if u.Sender != p.r.id || u.PoolElement.Home != p.r.id {
		return
	}
	p.announce(u.Action, u.PoolHandle, u.PoolElement)
}

// onList learns peers from a LIST_RESPONSE (entries with ID 0 and our own
// cluster's registrars are skipped).
func (p *peers) onList(m *enrp.ListResponse) {
	for i := range m.Servers {
		si := &m.Servers[i]
		if si.ID == 0 || p.isMember(si.ID) {
			continue
		}
		p.mu.Lock()
		p.peerLocked(si.ID, si)
		p.mu.Unlock()
	}
}

// peerDead starts the takeover of a silent peer (RFC 5353 section 3.9).
func (p *peers) peerDead(fp *foreignPeer, target uint32, now time.Time) {
	owned := len(p.r.store.Owned(target))
	p.mu.Lock()
	_, running := p.takeovers[target]
	_, other := p.acked[target]
	if running {
		p.mu.Unlock()
		return
	}
	fp.probeAt = time.Time{}
	fp.lastHeard = now
	if owned == 0 || other {
		// Nothing to take over, or another server does: forget it.
		p.dropLocked(fp)
		p.mu.Unlock()
		p.r.log.Info("ENRP peer is dead", "peer", hexID(target), "pes", owned)
		return
	}
	t := &takeover{target: target, waitFor: map[uint32]bool{}, expires: now.Add(p.r.cfg.TakeoverExpiry.D())}
	for _, x := range p.all {
		if x.id != 0 && x.id != target && x.conn != nil {
			t.waitFor[x.id] = true
		}
	}
	p.takeovers[target] = t
	p.mu.Unlock()
	p.r.log.Info("ENRP peer is dead: starting takeover", "peer", hexID(target), "pes", owned, "acks-needed", len(t.waitFor))
	p.broadcast(func(rcv uint32) enrp.Message { return enrp.NewInitTakeover(p.r.id, rcv, target) })
}

func (p *peers) dropLocked(fp *foreignPeer) {
	if fp.static {
		fp.id = 0 // keep dialing its address; it may come back
		return
	}
	for i, x := range p.all {
		if x == fp {
			p.all = append(p.all[:i], p.all[i+1:]...)
			break
		}
	}
	if fp.conn != nil {
		fp.conn.c.Close()
	}
}

// onInitTakeover handles INIT_TAKEOVER from a peer.
func (p *peers) onInitTakeover(ec *enrpConn, m *enrp.InitTakeover) {
	p.heard(ec, m.Sender, nil)
	target := m.Target
	if target == p.r.id {
		// We are alive: tell everyone.
		p.r.log.Warn("ENRP peer wants to take us over: announcing that we are alive", "peer", hexID(m.Sender))
		p.broadcast(func(rcv uint32) enrp.Message { return p.r.presence(rcv, false) })
		ec.send(p.r.presence(m.Sender, false))
		return
	}
	if p.isMember(target) {
		return // a member of our cluster: raft and gossip know better; no ack
	}
	p.mu.Lock()
	if t, ok := p.takeovers[target]; ok {
		if m.Sender < p.r.id {
			delete(p.takeovers, t.target) // the lower ID wins
		} else {
			p.mu.Unlock()
			return
		}
	}
	p.acked[target] = m.Sender
	p.mu.Unlock()
	ec.send(enrp.NewInitTakeoverAck(p.r.id, m.Sender, target))
}

// onInitTakeoverAck collects acknowledgements of our takeover.
func (p *peers) onInitTakeoverAck(m *enrp.InitTakeoverAck) {
	p.mu.Lock()
	if t, ok := p.takeovers[m.Target]; ok {
		delete(t.waitFor, m.Sender)
	}
	p.mu.Unlock()
	p.poke()
}

func (p *peers) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// finishTakeovers completes takeovers with every ACK in, and abandons
// those that expired (RSPLIB's rule).
func (p *peers) finishTakeovers(now time.Time) {
	var done []uint32
	p.mu.Lock()
	for target, t := range p.takeovers {
		if len(t.waitFor) == 0 {
			done = append(done, target)
			delete(p.takeovers, target)
			continue
		}
		if now.After(t.expires) {
			p.r.log.Warn("takeover abandoned: not every peer acknowledged", "target", hexID(target), "missing", len(t.waitFor))
			delete(p.takeovers, target)
		}
	}
	p.mu.Unlock()
	for _, target := range done {
		p.completeTakeover(target)
	}
}

// completeTakeover makes this registrar home of the target's PEs (through
// raft; the liveness supervisor then sends them H=1 keep-alives), tells
// the peers with TAKEOVER_SERVER and forgets the target.
func (p *peers) completeTakeover(target uint32) {
	if err := p.r.commit(context.Background(), cluster.NewTakeover(time.Now(), p.r.id, target, []uint32{p.r.id})); err != nil {
		p.r.log.Warn("takeover of ENRP peer not committed", "target", hexID(target), "error", err)
		return
	}
	p.r.log.Info("took over the PEs of a dead ENRP peer", "target", hexID(target))
	p.broadcast(func(rcv uint32) enrp.Message { return enrp.NewTakeoverServer(p.r.id, rcv, target) })
	p.mu.Lock()
	for _, fp := range p.all {
		if fp.id == target {
			p.dropLocked(fp)
			break
		}
	}
	p.mu.Unlock()
}

// onTakeoverServer: a peer took over another server's PEs; record their
// new home so checksums keep matching.
func (p *peers) onTakeoverServer(ec *enrpConn, m *enrp.TakeoverServer) {
	p.heard(ec, m.Sender, nil)
	if p.isMember(m.Target) || len(p.r.store.Owned(m.Target)) == 0 {
		return
	}
	p.r.goFunc(func() {
		if err := p.r.commit(context.Background(), cluster.NewTakeover(time.Now(), m.Sender, m.Target, []uint32{m.Sender})); err != nil {
			p.r.log.Warn("recording a peer's takeover failed", "target", hexID(m.Target), "error", err)
		}
	})
}

// expireForeign removes PEs learnt from peers whose registration life ran
// out without a refresh (only those learnt here: other members track
// their own peers' PEs).
func (p *peers) expireForeign(now time.Time) {
	var gone []store.PE
	members := p.memberIDs() // once, not per PE
	p.mu.Lock()
	for key, at := range p.refreshed {
		pe, ok := p.r.store.Lookup(key.h, key.id)
		if !ok || slices.Contains(members, pe.Element.Home) {
			delete(p.refreshed, key)
			continue
		}
		life := time.Duration(pe.Element.Lifetime) * time.Millisecond
		if now.Sub(at) > life {
			delete(p.refreshed, key)
			gone = append(gone, pe)
		}
	}
	p.mu.Unlock()
	for _, pe := range gone {
		p.r.goFunc(func() {
			if err := p.r.commit(context.Background(), cluster.NewUpdate(time.Now(), enrp.DelPE, pe.Element.Home, pe.Handle, pe.Element)); err == nil {
				p.r.log.Info("foreign PE expired", "pool", pe.Handle, "pe", fmt.Sprintf("%08x", pe.Element.ID), "home", hexID(pe.Element.Home))
			}
		})
	}
}

// startMulticast sends and receives ENRP_PRESENCE on the ENRP multicast
// group; a PRESENCE from an unknown registrar makes it a peer.
func (p *peers) startMulticast(ctx context.Context, group string) error {
	mc := transport.DefaultMulticastConfig()
	mc.Logger = p.r.log.Named("enrp-multicast")
	mc.Loopback = false
	m, err := transport.OpenMulticast(ctx, group, mc)
	if err != nil {
		return err
	}
	p.r.goFunc(func() {
		<-p.r.quit
		m.Close()
	})
	p.r.goFunc(func() { // receive
		for {
			b, _, err := m.Recv(context.Background())
			if err != nil {
				if errors.Is(err, transport.ErrClosed) {
					return
				}
				continue
			}
			msg, _, err := enrp.Unpack(b, p.r.limitsFor())
			if err != nil {
				continue
			}
			if pr, ok := msg.(*enrp.Presence); ok && pr.Sender != p.r.id {
				p.heard(nil, pr.Sender, &pr.ServerInfo)
			}
		}
	})
	p.r.goFunc(func() { // send
		for {
			b, err := enrp.Pack(p.r.presence(0, false))
			if err == nil {
				sctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = m.Send(sctx, b)
				cancel()
			}
			select {
			case <-p.r.quit:
				return
			case <-time.After(p.jitter(p.r.cfg.PeerHeartbeat.D())):
			}
		}
	})
	p.r.log.Info("ENRP presence multicast", "group", group)
	return nil
}

// setStatic makes the static peers exactly addrs (a configuration
// reload): new addresses are dialed at the next heartbeat (a peer already
// learnt at that address becomes static), peers no longer listed are
// dropped and our associations to them closed. Their PEs expire after
// their registration life, like those of any peer that stops refreshing.
func (p *peers) setStatic(addrs []string) (added, removed []string) {
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var kept []*foreignPeer
	have := map[string]bool{}
	for _, fp := range p.all {
		if fp.static && !want[fp.addr] {
			removed = append(removed, fp.addr)
			fp.removed = true
			if fp.conn != nil {
				fp.conn.c.Close()
			}
			continue
		}
		if fp.static {
			have[fp.addr] = true
		}
		kept = append(kept, fp)
	}
	for _, a := range addrs {
		if have[a] {
			continue
		}
		have[a] = true
		added = append(added, a)
		learnt := false
		for _, fp := range kept {
			if !fp.static && sameEndpoint(fp.addr, a) {
				fp.static, fp.addr, learnt = true, a, true
				break
			}
		}
		if !learnt {
			kept = append(kept, &foreignPeer{addr: a, static: true})
		}
	}
	p.all = kept
	return added, removed
}

// peerStates counts the peers by state for /metrics: up (an association,
// not being probed), probing (a PRESENCE with reply required is
// unanswered), down (no association).
func (p *peers) peerStates() map[string]int {
	out := map[string]int{"up": 0, "probing": 0, "down": 0}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fp := range p.all {
		switch {
		case !fp.probeAt.IsZero():
			out["probing"]++
		case fp.conn != nil || fp.inbound != nil:
			out["up"]++
		default:
			out["down"]++
		}
	}
	return out
}
