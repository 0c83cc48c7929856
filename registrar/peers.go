package registrar

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/transport"
)

// ENRP peering with registrars that are not members of this cluster
// (RSPLIB's rspregistrar, or another cluster): RFC 5353 on the wire. Each
// of our registrars peers on its own behalf, with its own server ID and
// the PEs it is home for; what it learns from a peer enters the
// handlespace through raft, homed at that peer.
//
// The protocol is split by concern: this file holds the peer table, the
// loop and the interface to the handlespace; peers_conn.go the
// associations, heartbeats, PRESENCE and peer lists; peers_sync.go the
// handle tables and updates; peers_takeover.go the takeover of a dead
// peer (RFC 5353 section 3.9); peers_mentor.go the start-up phase.

// foreignPeer is one ENRP peer outside the cluster.
type foreignPeer struct {
	id     uint32 // 0 until the peer identified itself
	addr   string // ENRP address spec to dial
	static bool
	// removed: a reload dropped this static peer (a dial that completes
	// afterwards closes its association).
	removed bool
	conn    *enrpConn // our association to it (nil: not connected)
	// inbound is an association the peer opened to our ENRP port. We dial
	// from our ENRP port too, so the two are between the same endpoints
	// and exist side by side only when both sides dialled at once; the
	// heartbeat then keeps one (see duplicate).
	inbound *enrpConn
	// greet: an association to the peer is new; the next heartbeat round
	// sends our PRESENCE on it at once (and, when the peer now has two,
	// asks for replies on both).
	greet bool
	// dupProbe: when we asked for replies on both of two associations
	// to the peer (zero: not deciding between two).
	dupProbe time.Time

	lastHeard time.Time
	probeAt   time.Time // PRESENCE R=1 sent (zero: not probing)
	nextBeat  time.Time
	checksum  uint16
	dialing   bool

	// Handle table sync (W=1) in progress.
	syncing    bool
	syncPEs    map[peKey]cluster.PE
	syncRounds int
	syncStart  time.Time
}

// peers runs ENRP peering. It reaches the handlespace only through hs;
// the rest of the registrar gives it configuration, logging, dialing and
// goroutines.
type peers struct {
	r  *Registrar
	hs peerHandlespace // set by start
	mu sync.Mutex
	// all are the peers; known is len(all), for the subscription's filter
	// (which must not wait for mu).
	all   []*foreignPeer
	known atomic.Int32
	// takeovers we run, by target; acked: targets another server takes
	// over (we acknowledged its INIT_TAKEOVER).
	takeovers map[uint32]*takeover
	acked     map[uint32]uint32
	// former are the IDs of peers we dropped (dead, or taken over): their
	// PEs stay foreign for the cluster's reconcile loop, whose takeover
	// would bypass the ENRP takeover (a static peer's entry forgets its ID
	// when it dies, to be learnt afresh if it comes back).
	former map[uint32]bool
	// refreshed: when each foreign PE was last confirmed by its owner
	// (PEs learnt by ENRP expire after their registration life).
	refreshed map[peKey]time.Time
	// mentor is the ENRP start-up phase (peers_mentor.go); multicast:
	// PRESENCE multicast runs (peers may be found by it).
	mentor    mentorState
	multicast bool
	wake      chan struct{}
	// outbox holds the HANDLE_UPDATEs of re-registrations (no commit);
	// sub delivers our committed changes. run sends both.
	outbox chan *enrp.HandleUpdate
	sub    *cluster.Subscription
}

func newPeers(r *Registrar) *peers {
	p := &peers{r: r, takeovers: map[uint32]*takeover{}, acked: map[uint32]uint32{}, former: map[uint32]bool{}, refreshed: map[peKey]time.Time{},
		wake: make(chan struct{}, 1), outbox: make(chan *enrp.HandleUpdate, 4096)}
	for _, a := range r.cfg.ENRPPeers {
		p.all = append(p.all, &foreignPeer{addr: a, static: true})
	}
	p.known.Store(int32(len(p.all)))
	return p
}

// peerHandlespace is what ENRP peering needs of the replicated
// handlespace (a *cluster.Handlespace): local reads, the cluster's
// members, writes on behalf of a peer, and our own committed changes.
type peerHandlespace interface {
	Lookup(h asap.PoolHandle, id uint32) (cluster.PE, bool)
	Owned(owner uint32) []cluster.PE
	Checksum(owner uint32) uint16
	Members() []cluster.Member
	// Commit and Batch write with the sender the command names (a peer,
	// or this registrar).
	Commit(ctx context.Context, cmd cluster.Command) error
	Batch(ctx context.Context, updates []*enrp.HandleUpdate) error
	Subscribe(buffer int, want func(*cluster.Change) bool) *cluster.Subscription
}

var _ peerHandlespace = (*cluster.Handlespace)(nil)

// start makes peering use hs and follow our committed changes (run sends
// them); call it before the first registration is served.
func (p *peers) start(hs peerHandlespace) {
	p.hs = hs
	p.sub = hs.Subscribe(changeBuffer, p.wants)
}

// setAllLocked replaces the peer list (p.mu held).
func (p *peers) setAllLocked(all []*foreignPeer) {
	p.all = all
	p.known.Store(int32(len(all)))
}

// isForeign tells the cluster layer which owners are ENRP peers, now or
// before (their PEs are not taken over by the cluster's reconcile loop:
// a dead peer's PEs move by ENRP takeover, ours or another peer's). A
// registrar gossip knows is ours, whatever ENRP said.
func (p *peers) isForeign(id uint32) bool {
	if p.isMember(id) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.former[id] {
		return true
	}
	if _, ok := p.acked[id]; ok {
		return true
	}
	for _, fp := range p.all {
		if fp.id == id {
			return true
		}
	}
	return false
}

// knows reports whether id is a peer we heard from by ID (a PRESENCE, or
// a peer list) or a registrar of our cluster.
func (p *peers) knows(id uint32) bool {
	if id != 0 && p.isMember(id) {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fp := range p.all {
		if id != 0 && fp.id == id {
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
	if p.hs != nil {
		for _, m := range p.hs.Members() {
			ids = append(ids, m.Meta.ID)
		}
	}
	return ids
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
				p.r.log.Info("new ENRP peer", "peer", hexID(id), "address", fp.addr, "static", true)
				return fp
			}
		}
		fp := &foreignPeer{id: id, addr: addr}
		p.setAllLocked(append(p.all, fp))
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
// takeovers, foreign PE expiry, and sending our changes to the peers.
func (p *peers) run() {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	nextExpiry := time.Now()
	for {
		var changes <-chan cluster.Change // nil once not followed
		if p.sub != nil {
			changes = p.sub.C()
		}
		select {
		case <-p.r.quit:
			if p.sub != nil {
				p.sub.Close()
			}
			return
		case <-tick.C:
		case <-p.wake:
		case u := <-p.outbox:
			p.send(u)
			continue
		case c, ok := <-changes:
			if !ok {
				p.caughtUp()
			} else if c.Command.Kind == cluster.KindTakeover {
				p.sendAdopted()
			} else if u := c.Command.Updates[0]; p.known.Load() > 0 {
				p.queued(u.Action, u.PoolHandle, u.PoolElement)
			}
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
	p.setAllLocked(kept)
	return added, removed
}

// ENRPPeer is one entry of GET /v1/enrp/peers: a registrar outside the
// cluster that this one peers with over ENRP.
type ENRPPeer struct {
	ID        string    `json:"id,omitempty"` // empty until it identified itself
	Address   string    `json:"address,omitempty"`
	Static    bool      `json:"static"` // configured (enrp_peers), not learnt
	State     string    `json:"state"`  // up, probing, down
	LastHeard time.Time `json:"last_heard,omitzero"`
	Checksum  string    `json:"checksum"` // its PE checksum as last announced
}

// list describes the peers.
func (p *peers) list() []ENRPPeer {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []ENRPPeer{}
	for _, fp := range p.all {
		e := ENRPPeer{Address: fp.addr, Static: fp.static, State: "down", Checksum: fmt.Sprintf("0x%04x", fp.checksum)}
		if fp.id != 0 {
			e.ID = hexID(fp.id)
		}
		switch {
		case !fp.probeAt.IsZero():
			e.State = "probing"
		case fp.conn != nil || fp.inbound != nil:
			e.State = "up"
		}
		if !fp.lastHeard.IsZero() {
			e.LastHeard = fp.lastHeard.UTC()
		}
		out = append(out, e)
	}
	return out
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
