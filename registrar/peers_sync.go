package registrar

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/enrp"
)

// ENRP peering: handle tables and updates (ENRP_HANDLE_TABLE_REQUEST and
// RESPONSE, ENRP_HANDLE_UPDATE): what a peer owns enters our handlespace
// homed at it, and the peers are told of the changes of the PEs homed
// here.

// startSync asks a peer for the PEs it owns (W=1), page by page.
func (p *peers) startSync(fp *foreignPeer) {
	p.mu.Lock()
	if fp.syncing {
		p.mu.Unlock()
		return
	}
	fp.syncing, fp.syncPEs, fp.syncRounds, fp.syncStart = true, map[peKey]cluster.PE{}, 0, time.Now()
	p.mu.Unlock()
	p.sendTo(fp, &enrp.HandleTableRequest{Header: enrp.Header{Sender: p.r.id}, OwnOnly: true})
}

// maxSyncRounds bounds handle table paging (RSPLIB can loop forever with
// small page limits).
const maxSyncRounds = 10000

// onTable handles a HANDLE_TABLE_RESPONSE to our W=1 request.
func (p *peers) onTable(ec *enrpConn, m *enrp.HandleTableResponse) {
	if p.onMentorTable(ec, m) {
		return
	}
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
			fp.syncPEs[peKey{pool.PoolHandle, pe.ID}] = cluster.PE{Handle: pool.PoolHandle, Element: pe, Registered: now.UnixNano()}
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
func (p *peers) applyTable(owner uint32, table map[peKey]cluster.PE) {
	now := time.Now()
	var cmd cluster.Command
	for key := range table {
		// A PE we hold as homed in our cluster stays ours, unless it is
		// one of this registrar's that the peer took over while we were
		// down.
		if cur, ok := p.hs.Lookup(key.h, key.id); ok && p.isMember(cur.Element.Home) && !p.tookOverWhileDown(cur) {
			delete(table, key)
		}
	}
	for _, pe := range p.hs.Owned(owner) {
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
	if err := p.hs.Batch(context.Background(), cmd.Updates); err != nil {
		p.r.log.Warn("handle table of ENRP peer not fully applied", "peer", hexID(owner), "error", err)
		return
	}
	p.r.log.Info("handle table synchronised with ENRP peer", "peer", hexID(owner), "changes", len(cmd.Updates))
}

// tookOverWhileDown reports whether a peer's claim to be home of cur, a
// PE our handlespace homes in our cluster, wins: cur is homed at this
// registrar, restored from the handlespace at our start and not
// registered here since. A foreign registrar took it over while we were
// down (RFC 5353 section 3.9): the PE re-registers there, not here, and
// its new home's word is the one to keep.
func (p *peers) tookOverWhileDown(cur cluster.PE) bool {
	if cur.Element.Home != p.r.id || p.r.live == nil || !p.r.live.restoredPE(cur.Handle, cur.Element.ID) {
		return false
	}
	p.r.log.Info("a PE of ours was taken over while we were down: its new home keeps it", "pool", cur.Handle,
		"pe", fmt.Sprintf("%08x", cur.Element.ID))
	return true
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
	cur, exists := p.hs.Lookup(m.PoolHandle, pe.ID)
	// A takeover suggestion (T=1) from the PE's home: RSPLIB sends it as
	// a second copy of the update, after the T=0 one.
	suggested := m.TakeoverSuggested && m.Action == enrp.AddPE && p.r.cfg.ENRPTakeoverSuggestion && pe.Home == m.Sender
	if m.Action == enrp.AddPE {
		p.mu.Lock()
		p.refreshed[key] = time.Now()
		p.mu.Unlock()
		if exists && samePE(&cur.Element, &pe) {
			if suggested {
				p.r.live.claim(m.PoolHandle, pe)
			}
			return // a refresh: no raft write
		}
		if exists && p.isMember(cur.Element.Home) && !p.tookOverWhileDown(cur) {
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
		if err := p.hs.Commit(context.Background(), cluster.NewUpdate(time.Now(), m.Action, m.Sender, m.PoolHandle, pe)); err != nil {
			p.r.log.Warn("handle update from ENRP peer not applied", "peer", hexID(m.Sender), "pool", ph(m.PoolHandle),
				"pe", fmt.Sprintf("%08x", pe.ID), "error", err)
			return
		}
		if suggested {
			p.r.live.claim(m.PoolHandle, pe)
		}
	})
}

// announce queues, for every peer, the re-registration of a PE homed here
// that changed nothing (no commit: the peers refresh its lifetime). It
// never blocks: a full queue drops the update, and the peers' checksum
// check repairs their tables.
func (p *peers) announce(action enrp.UpdateAction, h asap.PoolHandle, pe asap.PoolElement) {
	if p.known.Load() == 0 {
		return
	}
	pe.ASAP = enrpASAPTransport(pe.ASAP)
	select {
	case p.outbox <- &enrp.HandleUpdate{Header: enrp.Header{Sender: p.r.id}, Action: action, PoolHandle: h, PoolElement: pe}:
	default:
		p.r.log.Warn("ENRP update queue full: peers resynchronise by checksum", "pool", ph(h), "pe", fmt.Sprintf("%08x", pe.ID))
	}
}

// queued sends a committed change of a PE homed here (ADD_PE for
// registrations, DEL_PE for removals) to every peer (run's goroutine).
func (p *peers) queued(action enrp.UpdateAction, h asap.PoolHandle, pe asap.PoolElement) {
	pe.ASAP = enrpASAPTransport(pe.ASAP)
	p.send(&enrp.HandleUpdate{Header: enrp.Header{Sender: p.r.id}, Action: action, PoolHandle: h, PoolElement: pe})
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

// wants picks, for the subscription, the committed changes the peers are
// told of: our own updates of PEs homed here that applied (raft's FSM
// goroutine: it must not block), while there are peers.
func (p *peers) wants(c *cluster.Change) bool {
	if c.Kind != cluster.ChangeCommand || c.Err != nil || p.known.Load() == 0 {
		return false
	}
	if c.Command.Kind == cluster.KindTakeover {
		// PEs that became ours: the peers learn their new home at once
		// (sentAdopted), not at their next registration. A peer that
		// takes over a dead member of our cluster itself (we do not ack
		// its INIT_TAKEOVER) would otherwise still see the dead home.
		return slices.Contains(c.Command.Owners, p.r.id)
	}
	if c.Command.Kind != cluster.KindUpdate && c.Command.Kind != cluster.KindRemove {
		return false
	}
	u := c.Command.Updates[0]
	return u.Sender == p.r.id && u.PoolElement.Home == p.r.id
}

// sendAdopted sends ADD_PE for every PE homed here to every peer, after a
// takeover made this registrar home of more PEs (run's goroutine). Those
// that did not move are refreshes to the peers.
func (p *peers) sendAdopted() {
	owned := p.hs.Owned(p.r.id)
	for _, pe := range owned {
		p.queued(enrp.AddPE, pe.Handle, pe.Element)
	}
	p.r.log.Info("told the ENRP peers of the PEs homed here after a takeover", "pes", len(owned))
}

// caughtUp handles the end of the subscription: one that fell behind
// dropped updates (the peers resynchronise by checksum) and is renewed;
// one closed with the handlespace is not.
func (p *peers) caughtUp() {
	if !errors.Is(p.sub.Err(), cluster.ErrSlowSubscriber) {
		p.sub = nil
		return
	}
	p.r.log.Warn("ENRP update queue full: peers resynchronise by checksum")
	p.sub = p.hs.Subscribe(changeBuffer, p.wants)
}

// expireForeign removes PEs learnt from peers whose registration life ran
// out without a refresh (only those learnt here: other members track
// their own peers' PEs).
func (p *peers) expireForeign(now time.Time) {
	var gone []cluster.PE
	members := p.memberIDs() // once, not per PE
	p.mu.Lock()
	for key, at := range p.refreshed {
		pe, ok := p.hs.Lookup(key.h, key.id)
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
			if err := p.hs.Commit(context.Background(), cluster.NewRemove(time.Now(), cluster.ReasonLifetime, pe.Element.Home, pe.Handle, pe.Element)); err == nil {
				p.r.log.Info("foreign PE expired", "pool", ph(pe.Handle), "pe", fmt.Sprintf("%08x", pe.Element.ID), "home", hexID(pe.Element.Home))
			}
		})
	}
}
