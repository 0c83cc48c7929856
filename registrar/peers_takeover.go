package registrar

import (
	"context"
	"time"

	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/enrp"
)

// ENRP peering: the takeover of a dead peer (RFC 5353 section 3.9).

// takeover is a takeover of a dead peer we initiated.
type takeover struct {
	target  uint32
	waitFor map[uint32]bool // peers whose INIT_TAKEOVER_ACK is missing
	expires time.Time
}

// peerDead starts the takeover of a silent peer (RFC 5353 section 3.9).
func (p *peers) peerDead(fp *foreignPeer, target uint32, now time.Time) {
	owned := len(p.hs.Owned(target))
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
		if x.id != 0 && x.id != target && (x.conn != nil || x.inbound != nil) {
			t.waitFor[x.id] = true
		}
	}
	p.takeovers[target] = t
	p.mu.Unlock()
	p.r.log.Info("ENRP peer is dead: starting takeover", "peer", hexID(target), "pes", owned, "acks-needed", len(t.waitFor))
	p.broadcast(func(rcv uint32) enrp.Message { return enrp.NewInitTakeover(p.r.id, rcv, target) })
}

func (p *peers) dropLocked(fp *foreignPeer) {
	if fp.id != 0 {
		p.former[fp.id] = true
	}
	if fp.static {
		fp.id = 0 // keep dialing its address; it may come back
		return
	}
	for i, x := range p.all {
		if x == fp {
			p.setAllLocked(append(p.all[:i], p.all[i+1:]...))
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
	if err := p.hs.Commit(context.Background(), cluster.NewTakeover(time.Now(), p.r.id, target, []uint32{p.r.id})); err != nil {
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
	if p.isMember(m.Target) || len(p.hs.Owned(m.Target)) == 0 {
		return
	}
	p.r.goFunc(func() {
		if err := p.hs.Commit(context.Background(), cluster.NewTakeover(time.Now(), m.Sender, m.Target, []uint32{m.Sender})); err != nil {
			p.r.log.Warn("recording a peer's takeover failed", "target", hexID(m.Target), "error", err)
		}
	})
}
