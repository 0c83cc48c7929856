package registrar

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/transport"
)

// Handle table paging, as RSPLIB: at most this many PEs per
// HANDLE_TABLE_RESPONSE, and a byte budget well under the 64 KiB limit.
const (
	maxPEsPerTableResponse   = 128
	maxBytesPerTableResponse = 60000
)

// enrpConn is one ENRP association with another registrar (or a tool such
// as hsdump).
type enrpConn struct {
	r       *Registrar
	c       transport.Conn
	inbound bool // accepted on our ENRP port
	// tlsPeer: accepted on the ENRP TLS listener, whose handshake admits
	// only registrar certificates of the CA.
	tlsPeer bool
	sendMu  sync.Mutex // guards buf; sends come from several goroutines
	buf     []byte
	next    map[tableKey]cluster.Cursor // continuation per requester and W flag
	// openedAt is when the association was set up, heardAt when a peer's
	// message last arrived on it (zero: never); both guarded by peers.mu.
	// They tell which of two associations to the same peer it answers on.
	openedAt, heardAt time.Time
	// announced are the servers that sent a PRESENCE on this association,
	// accepted as peers or not (hsdump is not); only the reader goroutine
	// uses it.
	announced map[uint32]bool
}

type tableKey struct {
	peer    uint32
	ownOnly bool
}

// serveENRP serves an accepted ENRP association.
func (r *Registrar) serveENRP(c transport.Conn) {
	ec := &enrpConn{r: r, c: c, inbound: true, next: map[tableKey]cluster.Cursor{}, openedAt: time.Now()}
	r.peers.accepted(ec)
	r.serveENRPConn(ec)
}

// serveENRPTLS serves an association accepted on the ENRP TLS listener.
func (r *Registrar) serveENRPTLS(c transport.Conn) {
	r.serveENRPConn(&enrpConn{r: r, c: c, inbound: true, tlsPeer: true, next: map[tableKey]cluster.Cursor{}})
}

// serveENRPConn reads ENRP messages from one association (accepted, or
// dialed to a peer) until it closes.
func (r *Registrar) serveENRPConn(ec *enrpConn) {
	c := ec.c
	defer func() {
		c.Close()
		r.peers.connClosed(ec)
	}()
	ctx, cancel := r.quitContext()
	defer cancel()
	for {
		ppid, msg, err := c.Recv(ctx)
		if err != nil {
			return
		}
		if ppid != transport.PPIDENRP {
			r.log.Warn("dropping message with a foreign payload protocol on the ENRP port", "ppid", ppid)
			continue
		}
		ec.handle(msg)
	}
}

func (ec *enrpConn) send(m enrp.Message) {
	ec.sendMu.Lock()
	defer ec.sendMu.Unlock()
	b, err := enrp.Append(ec.buf[:0], m)
	if err != nil {
		ec.r.log.Error("cannot encode ENRP reply", "type", m.Type(), "error", err)
		return
	}
	ec.buf = b
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = ec.c.Send(ctx, transport.PPIDENRP, b)
}

func (ec *enrpConn) handle(msg []byte) {
	r := ec.r
	m, unrec, err := enrp.Unpack(msg, r.limitsFor())
	if err != nil {
		r.metrics.malformed.Inc()
		if cause, ok := asap.CauseOf(err); ok {
			in, _ := enrp.PeekHeader(msg) // zero IDs when even the header is short
			ec.send(&enrp.Error{Header: enrp.Header{Sender: r.id, Receiver: in.Sender}, Error: asap.OperationError{Causes: []asap.Cause{cause}}})
		}
		return
	}
	if p, ok := m.(*enrp.Presence); ok {
		if ec.announced == nil {
			ec.announced = map[uint32]bool{}
		}
		if len(ec.announced) < 64 {
			ec.announced[p.Sender] = true
		}
	}
	if !r.acceptPeer(ec, m) {
		r.refusePeer(ec, m)
		return
	}
	peer := m.IDs().Sender
	hdr := enrp.Header{Sender: r.id, Receiver: peer}
	if len(unrec) > 0 {
		e := &enrp.Error{Header: hdr}
		for _, u := range unrec {
			e.Error.Causes = append(e.Error.Causes, u.Cause())
		}
		ec.send(e)
	}
	switch m := m.(type) {
	case *enrp.Presence:
		r.peers.onPresence(ec, m)
		if m.ReplyRequired && r.peers.isMember(peer) {
			ec.send(r.presence(peer, false))
		}
	case *enrp.HandleTableRequest:
		if !r.peers.knows(peer) && !ec.announced[peer] {
			// As RSPLIB: only a server that announced itself (a PRESENCE,
			// here or as a peer) gets our table; hsdump, RSPLIB's tool,
			// sends one first (and is not made a peer).
			r.log.Info("handle table request from an unknown ENRP server refused", "peer", hexID(peer))
			ec.send(&enrp.HandleTableResponse{Header: hdr, Reject: true})
			return
		}
		resp := ec.table(hdr, m.OwnOnly)
		r.log.Debug("answered a handle table request", "peer", hexID(peer), "own_only", m.OwnOnly, "pes", tablePEs(resp), "more", resp.More)
		ec.send(resp)
	case *enrp.HandleTableResponse:
		r.peers.onTable(ec, m)
	case *enrp.HandleUpdate:
		r.peers.onUpdate(ec, m)
	case *enrp.ListRequest:
		ec.send(r.listResponse(hdr))
	case *enrp.ListResponse:
		r.peers.onList(m)
	case *enrp.InitTakeover:
		r.peers.onInitTakeover(ec, m)
	case *enrp.InitTakeoverAck:
		r.peers.onInitTakeoverAck(m)
	case *enrp.TakeoverServer:
		r.peers.onTakeoverServer(ec, m)
	case *enrp.Error:
		// RSPLIB keeps the offender's IDs in its errors: do not trust Sender.
		r.log.Debug("ENRP error received", "causes", m.Error.Error())
	}
}

// listResponse lists this registrar and the peers it knows by ID.
func (r *Registrar) listResponse(hdr enrp.Header) *enrp.ListResponse {
	resp := &enrp.ListResponse{Header: hdr, Servers: []asap.ServerInfo{r.serverInfo()}}
	r.peers.mu.Lock()
	defer r.peers.mu.Unlock()
	for _, fp := range r.peers.all {
		if fp.id == 0 || fp.id == hdr.Receiver {
			continue
		}
		if spec, err := transport.ParseSpec(fp.addr); err == nil {
			si := asap.ServerInfo{ID: fp.id, Transport: asap.Transport{Kind: asap.ParamSCTPTransport, Port: spec.Port}}
			for _, h := range spec.Hosts {
				if a, err := netip.ParseAddr(h); err == nil {
					si.Transport.Addrs = append(si.Transport.Addrs, a)
				}
			}
			if len(si.Transport.Addrs) > 0 {
				resp.Servers = append(resp.Servers, si)
			}
		}
	}
	return resp
}

// presence builds our ENRP_PRESENCE for a peer.
func (r *Registrar) presence(peer uint32, replyRequired bool) *enrp.Presence {
	return &enrp.Presence{Header: enrp.Header{Sender: r.id, Receiver: peer}, ReplyRequired: replyRequired,
		Checksum: r.ownChecksum(), ServerInfo: r.serverInfo()}
}

// ownChecksum is the PE checksum of the PEs our own-PEs handle table
// (W=1) lists: those homed here less the ones restored at our start
// that have not registered here since (handleTable leaves them out, as
// a foreign registrar may have taken them over while we were down). With
// them in, a peer would find the checksum and the table it syncs apart
// at every PRESENCE, and resync each time.
func (r *Registrar) ownChecksum() uint16 {
	if r.live != nil {
		if restored, any := r.live.restoredSum(); any {
			return (r.hs.ChecksumSum(r.id) - restored).Value()
		}
	}
	return r.hs.Checksum(r.id)
}

// serverInfo describes our ENRP endpoint (an SCTP transport parameter, as
// RFC 5354 and RSPLIB expect, even when only TCP listens).
func (r *Registrar) serverInfo() asap.ServerInfo {
	t := asap.Transport{Kind: asap.ParamSCTPTransport, Use: asap.UseData}
	for _, na := range r.enrpLn.Addrs() {
		if na.Kind != transport.KindTCP && na.Kind != transport.KindSCTP {
			continue
		}
		for _, a := range na.Addrs {
			if !a.IsUnspecified() && !slices.Contains(t.Addrs, a) {
				t.Addrs = append(t.Addrs, a)
			}
		}
		if t.Port == 0 {
			t.Port = na.Port
		}
	}
	if len(t.Addrs) == 0 {
		t.Addrs = []netip.Addr{netip.IPv4Unspecified()}
	}
	return asap.ServerInfo{ID: r.id, Transport: t}
}

// table answers a HANDLE_TABLE_REQUEST with the next page of the table
// (all PEs, or only ours with W), M=1 while more remain. The continuation
// point is kept per requester, so paging always advances and ends.
func (ec *enrpConn) table(hdr enrp.Header, ownOnly bool) *enrp.HandleTableResponse {
	r := ec.r
	key := tableKey{hdr.Receiver, ownOnly}
	after := ec.next[key]
	var owner *uint32
	if ownOnly {
		owner = &r.id
	}
	resp := &enrp.HandleTableResponse{Header: hdr}
	size, count := 12, 0
	next, more := r.hs.Iterate(after, maxPEsPerTableResponse, owner, func(pe cluster.PE) bool {
		if ownOnly && r.live != nil && r.live.restoredPE(pe.Handle, pe.Element.ID) {
			// Restored at our start, not registered here since: a peer
			// may have taken it over while we were down, and claiming it
			// would take it back (tookOverWhileDown).
			return true
		}
		b, err := asap.AppendPoolElement(nil, &pe.Element)
		if err != nil {
			return true
		}
		add := len(b)
		n := len(resp.Pools)
		if n == 0 || resp.Pools[n-1].PoolHandle != pe.Handle {
			add += 4 + (len(pe.Handle)+3)&^3
		}
		if count > 0 && size+add > maxBytesPerTableResponse {
			return false
		}
		size += add
		count++
		if n == 0 || resp.Pools[n-1].PoolHandle != pe.Handle {
			resp.Pools = append(resp.Pools, enrp.PoolEntry{PoolHandle: pe.Handle})
			n++
		}
		resp.Pools[n-1].PEs = append(resp.Pools[n-1].PEs, pe.Element)
		return true
	})
	resp.More = more
	if more {
		ec.next[key] = next
	} else {
		delete(ec.next, key)
	}
	return resp
}

// tablePEs counts the PEs a handle table response carries.
func tablePEs(m *enrp.HandleTableResponse) int {
	n := 0
	for _, p := range m.Pools {
		n += len(p.PEs)
	}
	return n
}
