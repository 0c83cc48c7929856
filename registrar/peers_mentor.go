package registrar

import (
	"context"
	"time"

	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/enrp"
)

// ENRP peering: the start-up phase (RFC 5353 section 3.3). A registrar
// with ENRP peers takes the first peer whose PRESENCE arrives as its
// mentor, asks it for the whole handle table (W=0, page by page) and
// serves ASAP only once it has it, or after MentorTimeout. What the
// mentor lists enters the handlespace homed where the mentor says, as a
// peer's own table would; a PE restored here that the mentor homes at a
// foreign registrar was taken over while we were down (tookOverWhileDown).

// mentorState is the start-up phase's progress (peers.mu).
type mentorState struct {
	running bool
	peer    *foreignPeer // asked for its table; nil: none yet
	pes     map[peKey]cluster.PE
	rounds  int
	done    chan struct{} // closed when the phase ends
}

// mentorPhase runs the start-up phase when there is a peer to learn from
// (static peers, or the ENRP multicast group) and MentorTimeout is set.
func (r *Registrar) mentorPhase(ctx context.Context, _ *closers) error {
	p := r.peers
	wait := r.cfg.MentorTimeout.D()
	p.mu.Lock()
	static := len(p.all) > 0
	p.mu.Unlock()
	if wait == 0 || (!static && !p.multicast) {
		return nil
	}
	done := p.beginMentoring()
	start := time.Now()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-done:
		r.log.Info("ENRP start-up: handle table from the mentor peer; serving ASAP", "duration", time.Since(start).Round(time.Millisecond))
	case <-timer.C:
		p.endMentoring()
		r.log.Info("ENRP start-up: no mentor peer's handle table in time; serving ASAP", "mentor_timeout", wait)
	case <-ctx.Done():
		p.endMentoring()
		return ctx.Err()
	}
	return nil
}

func (p *peers) beginMentoring() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mentor = mentorState{running: true, done: make(chan struct{})}
	return p.mentor.done
}

// endMentoring ends the phase (once).
func (p *peers) endMentoring() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mentor.running {
		p.mentor.running, p.mentor.peer, p.mentor.pes = false, nil, nil
		close(p.mentor.done)
	}
}

// chooseMentor makes fp the mentor if the phase runs and has none, and
// asks it for its whole table; it reports whether fp is the mentor.
func (p *peers) chooseMentor(fp *foreignPeer) bool {
	p.mu.Lock()
	if !p.mentor.running || (p.mentor.peer != nil && p.mentor.peer != fp) {
		p.mu.Unlock()
		return false
	}
	if p.mentor.peer == fp {
		p.mu.Unlock()
		return true // asked already
	}
	p.mentor.peer, p.mentor.pes, p.mentor.rounds = fp, map[peKey]cluster.PE{}, 0
	id := fp.id
	p.mu.Unlock()
	p.r.log.Info("ENRP start-up: asking the peer for the handle table", "peer", hexID(id))
	p.sendTo(fp, &enrp.HandleTableRequest{Header: enrp.Header{Sender: p.r.id}})
	return true
}

// onMentorTable handles a page of the mentor's table; it reports whether
// m was one (from the mentor while the phase runs).
func (p *peers) onMentorTable(ec *enrpConn, m *enrp.HandleTableResponse) bool {
	p.mu.Lock()
	fp := p.mentor.peer
	if !p.mentor.running || fp == nil || fp.id != m.Sender {
		p.mu.Unlock()
		return false
	}
	if m.Reject {
		// Another peer's PRESENCE may make it the mentor.
		p.mentor.peer = nil
		p.mu.Unlock()
		p.r.log.Info("ENRP start-up: the mentor peer refused its handle table", "peer", hexID(m.Sender))
		return true
	}
	now := time.Now()
	for _, pool := range m.Pools {
		for _, pe := range pool.PEs {
			pe.Policy = p.r.withDistance(pe.Policy, ec.c, pe.Policy.Distance)
			p.mentor.pes[peKey{pool.PoolHandle, pe.ID}] = cluster.PE{Handle: pool.PoolHandle, Element: pe, Registered: now.UnixNano()}
		}
	}
	p.mentor.rounds++
	if m.More && p.mentor.rounds < maxSyncRounds {
		p.mu.Unlock()
		p.sendTo(fp, &enrp.HandleTableRequest{Header: enrp.Header{Sender: p.r.id}})
		return true
	}
	table := p.mentor.pes
	p.mentor.pes = nil
	p.mu.Unlock()
	p.r.goFunc(func() {
		p.applyMentorTable(m.Sender, table)
		p.endMentoring()
	})
	return true
}

// applyMentorTable enters the mentor's PEs homed at foreign registrars:
// new or changed ones through raft (sent by their home), all refreshed.
// PEs homed in our cluster are left alone, except ours that a foreign
// registrar took over while we were down.
func (p *peers) applyMentorTable(mentor uint32, table map[peKey]cluster.PE) {
	members := p.memberIDs()
	isMember := func(id uint32) bool {
		for _, m := range members {
			if m == id {
				return true
			}
		}
		return false
	}
	now := time.Now()
	var updates []*enrp.HandleUpdate
	var learnt []peKey
	for key, pe := range table {
		home := pe.Element.Home
		if home == 0 || isMember(home) {
			continue
		}
		if cur, ok := p.hs.Lookup(key.h, key.id); ok {
			if isMember(cur.Element.Home) && !p.tookOverWhileDown(cur) {
				continue
			}
			learnt = append(learnt, key)
			if samePE(&cur.Element, &pe.Element) {
				continue
			}
		} else {
			learnt = append(learnt, key)
		}
		updates = append(updates, &enrp.HandleUpdate{Header: enrp.Header{Sender: home}, Action: enrp.AddPE, PoolHandle: key.h, PoolElement: pe.Element})
	}
	p.mu.Lock()
	for _, key := range learnt {
		p.refreshed[key] = now
	}
	p.mu.Unlock()
	if len(updates) > 0 {
		if err := p.hs.Batch(context.Background(), updates); err != nil {
			p.r.log.Warn("ENRP start-up: the mentor's handle table was not fully applied", "peer", hexID(mentor), "error", err)
			return
		}
	}
	p.r.log.Info("ENRP start-up: handle table of the mentor peer applied", "peer", hexID(mentor), "pes", len(table), "changes", len(updates))
}
