package registrar

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/transport"
)

// ENRP peering: associations, heartbeats, PRESENCE and the peers' lists
// (ENRP_PRESENCE, ENRP_LIST_REQUEST/RESPONSE).

// jitter is safe for concurrent use: the peering loop and the multicast
// sender both call it.
func (p *peers) jitter(d time.Duration) time.Duration {
	// RSPLIB jitters its heartbeat by ±12.5 %.
	return time.Duration(float64(d) * (0.875 + 0.25*rand.Float64()))
}

func (p *peers) heartbeat(now time.Time) {
	cfg := p.r.cfg
	type action struct {
		fp    *foreignPeer
		ec    *enrpConn // nil: the peer's route
		id    uint32    // fp.id and fp.addr, read under the lock (peerLocked sets them)
		addr  string
		probe bool
		greet bool
	}
	var sends []action
	var dead []action
	var dials []*foreignPeer
	var dups []action
	p.mu.Lock()
	for _, fp := range p.all {
		// Never dial a peer we have an association with: ours comes from
		// our ENRP port too, and SCTP has one association per pair of
		// endpoints.
		if fp.conn == nil && fp.inbound == nil && !fp.dialing && fp.addr != "" {
			fp.dialing = true
			dials = append(dials, fp)
		}
		if ec := fp.duplicate(now, cfg.MaxTimeNoResponse.D(), p.r.id); ec != nil {
			// Forget it at once, so that nothing more is sent on it.
			if fp.conn == ec {
				fp.conn = nil
			} else {
				fp.inbound = nil
			}
			dups = append(dups, action{fp: fp, ec: ec, id: fp.id, addr: fp.addr})
		}
		if fp.lastHeard.IsZero() && fp.id != 0 {
			fp.lastHeard = now
		}
		switch {
		case fp.id != 0 && !fp.probeAt.IsZero() && now.Sub(fp.probeAt) > cfg.MaxTimeNoResponse.D():
			dead = append(dead, action{fp: fp, id: fp.id, probe: true})
		case fp.id != 0 && fp.probeAt.IsZero() && now.Sub(fp.lastHeard) > cfg.MaxTimeLastHeard.D():
			fp.probeAt = now
			sends = append(sends, action{fp: fp, id: fp.id, probe: true})
		case fp.greet && fp.conn != nil && fp.inbound != nil:
			// Both sides dialled at once: ask for a reply on each, so
			// that the one the peer answers on is the one we keep.
			fp.greet = false
			fp.dupProbe = now
			fp.nextBeat = now.Add(p.jitter(cfg.PeerHeartbeat.D()))
			sends = append(sends, action{fp: fp, ec: fp.conn, id: fp.id, addr: fp.addr, probe: true},
				action{fp: fp, ec: fp.inbound, id: fp.id, addr: fp.addr, probe: true})
		case fp.greet && fp.inbound != nil:
			fp.greet = false
			fp.nextBeat = now.Add(p.jitter(cfg.PeerHeartbeat.D()))
			sends = append(sends, action{fp: fp, ec: fp.inbound, id: fp.id, addr: fp.addr, greet: true})
		case fp.greet || !now.Before(fp.nextBeat):
			fp.greet = false
			fp.nextBeat = now.Add(p.jitter(cfg.PeerHeartbeat.D()))
			sends = append(sends, action{fp: fp, id: fp.id, addr: fp.addr})
		}
	}
	p.mu.Unlock()
	for _, fp := range dials {
		fp := fp
		p.r.goFunc(func() { p.dial(fp) })
	}
	for _, a := range dups {
		p.r.log.Info("closing the second association to the ENRP peer (both sides dialled at once)",
			append(peerArgs(a.id, a.addr), "closed", a.ec.c.LocalAddr().String()+"-"+a.ec.c.RemoteAddr().String(),
				"ours", !a.ec.inbound)...)
		a.ec.c.Close()
	}
	for _, a := range sends {
		m := p.r.presence(a.id, a.probe)
		if a.ec != nil {
			a.ec.send(m)
		} else {
			p.sendTo(a.fp, m)
		}
		if a.greet {
			p.r.log.Info("sent our PRESENCE on the association the ENRP peer opened", peerArgs(a.id, a.addr)...)
		}
	}
	for _, a := range dead {
		p.peerDead(a.fp, a.id, now)
	}
}

// duplicate returns the association to close when the peer has two, ours
// and its own, which happens when both sides dial at the same moment:
// over SCTP they are between the same endpoints, where the peer (RSPLIB's
// one-to-many socket) keeps only one and the kernel may hand the peer's
// packets to the other, so one of them is dead. The heartbeat asked for a
// reply on both (dupProbe); window (the probe time) later the one the
// peer has not answered on is closed. When it answered on both (TCP keeps
// both alive) the one the registrar with the higher ID dialled stays,
// which the peer decides the same way; when on neither, the one it was
// heard on last. It returns nil while there is nothing to decide yet.
// Call with p.mu held.
func (fp *foreignPeer) duplicate(now time.Time, window time.Duration, self uint32) *enrpConn {
	ours, theirs := fp.conn, fp.inbound
	if ours == nil || theirs == nil || fp.dupProbe.IsZero() || now.Sub(fp.dupProbe) < window {
		return nil
	}
	oursHeard, theirsHeard := !ours.heardAt.Before(fp.dupProbe), !theirs.heardAt.Before(fp.dupProbe)
	fp.dupProbe = time.Time{}
	switch {
	case oursHeard && !theirsHeard:
		return theirs
	case theirsHeard && !oursHeard:
		return ours
	case !oursHeard && ours.heardAt.After(theirs.heardAt):
		return theirs
	case !oursHeard && theirs.heardAt.After(ours.heardAt):
		return ours
	case fp.id != 0 && fp.id > self:
		return ours
	}
	return theirs
}

// dial opens our association to a peer and serves it.
func (p *peers) dial(fp *foreignPeer) {
	defer func() {
		p.mu.Lock()
		fp.dialing = false
		p.mu.Unlock()
	}()
	cfg := p.r.enrpDialConfig()
	p.mu.Lock()
	addr := fp.addr // a reload may make a learnt peer static
	busy := fp.inbound != nil
	p.mu.Unlock()
	if busy {
		return // the peer opened an association to us meanwhile
	}
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
	ec := &enrpConn{r: p.r, c: c, next: map[tableKey]cluster.Cursor{}, openedAt: time.Now()}
	p.mu.Lock()
	if fp.removed {
		p.mu.Unlock()
		c.Close()
		return
	}
	fp.conn = ec
	fp.nextBeat = time.Time{}
	if fp.inbound != nil {
		fp.greet = true // the peer dialled meanwhile: probe both
	}
	id := fp.id // read under the lock: peerLocked sets it
	p.mu.Unlock()
	p.r.log.Info("connected to ENRP peer", append(peerArgs(id, addr), "local", c.LocalAddr().String())...)
	// Say hello on it: our PRESENCE (reply required) and ask for its peers.
	ec.send(p.r.presence(id, true))
	ec.send(&enrp.ListRequest{Header: enrp.Header{Sender: p.r.id, Receiver: id}})
	p.r.serveENRPConn(ec)
	p.mu.Lock()
	if fp.conn == ec {
		fp.conn = nil
	}
	p.mu.Unlock()
}

// peerArgs are the log fields naming a peer: its address, and its ID
// once it has told us (a static peer has none until its first message).
func peerArgs(id uint32, addr string) []any {
	if id == 0 {
		return []any{"address", addr}
	}
	return []any{"peer", hexID(id), "address", addr}
}

// enrpDialConfig is the transport configuration of our associations to
// ENRP peers: from our ENRP listener's SCTP addresses and port (the
// listener shares its port, see bindListeners), as RSPLIB's one-to-many
// socket does. RSPLIB accepts a PRESENCE only on an association whose
// port is the ENRP port the message names; from an ephemeral port it
// would never take us as a peer unless it dialed us itself.
func (r *Registrar) enrpDialConfig() transport.Config {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDENRP
	cfg.WriteTimeout = 5 * time.Second
	cfg.Logger = r.log.Named("enrp")
	if r.tls != nil {
		cfg.TLS = r.tls.PeerClientConfig() // used by tls: peers (enrp_tls)
	}
	for _, ep := range r.enrpLn.Addrs() {
		if ep.Kind != transport.KindSCTP {
			continue
		}
		cfg.LocalPort, cfg.ReusePort = ep.Port, true
		for _, a := range ep.Addrs {
			if !a.IsUnspecified() {
				cfg.LocalAddrs = append(cfg.LocalAddrs, a)
			}
		}
		break
	}
	return cfg
}

// accepted notes an association a peer opened to our ENRP port as that
// peer's (by its address and port) before the peer names itself, so that
// the heartbeat does not dial it meanwhile; our PRESENCE goes on it at
// once.
func (p *peers) accepted(ec *enrpConn) {
	ra := ec.c.RemoteAddr()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fp := range p.all {
		if fp.inbound == nil && fp.addr != "" && endpointIn(fp.addr, ra) {
			fp.inbound = ec
			fp.greet = true
			select {
			case p.wake <- struct{}{}:
			default:
			}
			return
		}
	}
}

// endpointIn reports whether an ENRP address spec names one of ep's
// addresses and its port.
func endpointIn(spec string, ep transport.Endpoint) bool {
	sp, err := transport.ParseSpec(spec)
	if err != nil || sp.Port != ep.Port {
		return false
	}
	for _, h := range sp.Hosts {
		if a, err := netip.ParseAddr(h); err == nil && slices.Contains(ep.Addrs, a.Unmap()) {
			return true
		}
	}
	return false
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

// route is the association messages to the peer go on: of two, the one
// the peer was heard on last, its own if neither. Call with p.mu held.
func (fp *foreignPeer) route() *enrpConn {
	if fp.inbound == nil || fp.conn != nil && fp.conn.heardAt.After(fp.inbound.heardAt) {
		return fp.conn
	}
	return fp.inbound
}

// sendTo sends a message to a peer on its route. It reports whether the
// peer had an association to send on.
func (p *peers) sendTo(fp *foreignPeer, m enrp.Message) bool {
	p.mu.Lock()
	ec := fp.route()
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
	if ec != nil && !ec.inbound {
		// Our association to a static peer whose ID we did not know yet
		// (one named by a tls: address, which its Server Information
		// does not repeat): it is that peer.
		for _, fp := range p.all {
			if fp.conn == ec && fp.id == 0 && !slices.ContainsFunc(p.all, func(o *foreignPeer) bool { return o.id == id }) {
				fp.id = id
			}
		}
	}
	fp := p.peerLocked(id, si)
	if fp == nil {
		return nil
	}
	now := time.Now()
	if ec != nil && ec.inbound && fp.inbound != ec {
		// A new association from the peer (not told apart by its address
		// in accepted): our PRESENCE goes on it at once, not at our next
		// heartbeat (30 s), so that the peer knows us as soon as it can.
		fp.inbound = ec
		fp.greet = true
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	if ec != nil {
		ec.heardAt = now
	}
	fp.lastHeard = now
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
	if p.chooseMentor(fp) {
		return // its whole table (W=0) is on the way: no W=1 sync beside it
	}
	p.mu.Lock()
	fp.checksum = m.Checksum
	syncing := fp.syncing
	p.mu.Unlock()
	if !syncing && m.Checksum != p.hs.Checksum(m.Sender) {
		p.r.log.Info("PE checksum differs: resynchronising the peer's handle table", "peer", hexID(m.Sender),
			"theirs", fmt.Sprintf("0x%04x", m.Checksum), "ours", fmt.Sprintf("0x%04x", p.hs.Checksum(m.Sender)))
		p.startSync(fp)
	}
}

// onList learns peers from a LIST_RESPONSE (entries with ID 0 and our own
// cluster's registrars are skipped).
func (p *peers) onList(m *enrp.ListResponse) {
	for i := range m.Servers {
		si := &m.Servers[i]
		if si.ID == 0 || p.isMember(si.ID) || !p.r.trustedAddrs(si.Transport.Addrs) {
			continue // never dial what we cannot accept
		}
		p.mu.Lock()
		p.peerLocked(si.ID, si)
		p.mu.Unlock()
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
			b, src, err := m.Recv(context.Background())
			if err != nil {
				if errors.Is(err, transport.ErrClosed) {
					return
				}
				continue
			}
			if !p.r.trustedAddrs([]netip.Addr{src.Addr()}) {
				continue // discovery only from enrp_peer_networks
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
