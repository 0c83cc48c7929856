package registrar

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/transport"
)

// Which registrars outside the cluster are accepted as ENRP peers. ENRP
// has no authentication of its own (RFC 5353 leaves it to TLS or IPsec,
// RFC 5355), so the registrar trusts addresses: a peer is accepted when
// it talks over an association this registrar opened (to a configured
// peer, or to one an accepted peer listed), over the ENRP TLS listener
// (enrp_tls: its handshake admits only registrar certificates of the
// cluster's CA; its addresses are then accepted on the plain port too),
// or when the association's
// peer addresses include an address of a configured static peer
// (enrp_peers) or lie in a configured network (enrp_peer_networks, the
// networks multicast discovery may learn peers from). Messages that
// change the handlespace or the peer table from anyone else are refused
// with an ENRP_ERROR (Rejection due to Security Considerations) and
// logged; the registrar never dials an address that a stranger
// announced. Reads (HANDLE_TABLE_REQUEST, LIST_REQUEST: hsdump) pass this
// rule; a HANDLE_TABLE_REQUEST is then answered, as RSPLIB does, only to
// a server that sent a PRESENCE (on that association, accepted or not:
// hsdump sends one first), a known peer or a cluster member, and refused
// with the R bit otherwise.

// peerTrust is the accepted addresses, rebuilt when enrp_peers or
// enrp_peer_networks change.
type peerTrust struct {
	hosts []netip.Addr
	nets  []netip.Prefix
}

func newPeerTrust(cfg *Config) *peerTrust {
	t := &peerTrust{}
	for _, p := range cfg.ENRPPeers {
		spec, err := transport.ParseSpec(p)
		if err != nil {
			continue
		}
		for _, h := range spec.Hosts {
			if a, err := netip.ParseAddr(h); err == nil {
				t.hosts = append(t.hosts, a.Unmap())
			}
		}
	}
	for _, n := range cfg.ENRPPeerNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			t.nets = append(t.nets, p.Masked())
		}
	}
	return t
}

// addrs reports whether one of addrs is a static peer's or in an
// accepted network.
func (t *peerTrust) addrs(addrs []netip.Addr) bool {
	for _, a := range addrs {
		a = a.Unmap()
		if slices.Contains(t.hosts, a) {
			return true
		}
		for _, n := range t.nets {
			if n.Contains(a) {
				return true
			}
		}
	}
	return false
}

// acceptPeer decides whether the message m that arrived on ec may act:
// true for reads, for what arrives on an association we opened, and for
// associations from accepted addresses. It is the one place the rule
// lives (the multicast receiver and the peer lists ask trustedAddrs).
func (r *Registrar) acceptPeer(ec *enrpConn, m enrp.Message) bool {
	switch m.(type) {
	case *enrp.HandleTableRequest, *enrp.ListRequest, *enrp.Error:
		return true
	case *enrp.Presence:
		if r.peers.isMember(m.IDs().Sender) {
			return true // answered, never learnt from (heard skips members)
		}
	}
	if ec.tlsPeer {
		// TLS proved a registrar certificate of the CA: its addresses are
		// accepted from now on, also on the plain ENRP port (the address
		// it announces is that one).
		r.tlsPeerAddrs.Store(ec.c.PeerAddrs())
		return true
	}
	if !ec.inbound {
		return true // we dialed it
	}
	return r.trustedAddrs(ec.c.PeerAddrs())
}

// trustedAddrs reports whether a registrar at one of addrs may become a
// peer (and be dialed).
func (r *Registrar) trustedAddrs(addrs []netip.Addr) bool {
	if t := r.trust.Load(); t != nil && t.addrs(addrs) {
		return true
	}
	for _, a := range addrs {
		if _, ok := r.tlsPeerAddrs.Load(a.Unmap()); ok {
			return true
		}
	}
	return false
}

// tlsPeerAddrs are the addresses of registrars that proved a registrar
// certificate of the CA on the ENRP TLS listener.
type addrSet struct{ m sync.Map }

func (s *addrSet) Store(as []netip.Addr) {
	for _, a := range as {
		s.m.Store(a.Unmap(), struct{}{})
	}
}

func (s *addrSet) Load(a netip.Addr) (any, bool) { return s.m.Load(a) }

// refusePeer answers a message from a registrar that is not an accepted
// peer, and logs it.
func (r *Registrar) refusePeer(ec *enrpConn, m enrp.Message) {
	ids := m.IDs()
	r.metrics.enrpRefused.Inc()
	r.countError(asap.CauseRejectedSecurity)
	r.log.Warn("ENRP message from a registrar that is not an accepted peer refused", "type", m.Type(), "sender", hexID(ids.Sender),
		"remote", ec.c.RemoteAddr().String())
	ec.send(&enrp.Error{Header: enrp.Header{Sender: r.id, Receiver: ids.Sender},
		Error: asap.OperationError{Causes: []asap.Cause{{Code: asap.CauseRejectedSecurity}}}})
}
