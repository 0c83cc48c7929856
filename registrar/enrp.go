package registrar

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/ishidawataru/sctp"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/store"
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
	r    *Registrar
	c    transport.Conn
	buf  []byte
	next map[tableKey]store.Cursor // continuation per requester and W flag
}

type tableKey struct {
	peer    uint32
	ownOnly bool
}

// serveENRP answers ENRP requests on one connection.
func (r *Registrar) serveENRP(c transport.Conn) {
	defer c.Close()
	ec := &enrpConn{r: r, c: c, next: map[tableKey]store.Cursor{}}
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
			var sender uint32
			if len(msg) >= 8 {
				sender = uint32(msg[4])<<24 | uint32(msg[5])<<16 | uint32(msg[6])<<8 | uint32(msg[7])
			}
			ec.send(&enrp.Error{Header: enrp.Header{Sender: r.id, Receiver: sender}, Error: asap.OperationError{Causes: []asap.Cause{cause}}})
		}
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
		if m.ReplyRequired {
			ec.send(r.presence(peer, false))
		}
	case *enrp.HandleTableRequest:
		ec.send(ec.table(hdr, m.OwnOnly))
	case *enrp.ListRequest:
		ec.send(&enrp.ListResponse{Header: hdr, Servers: []asap.ServerInfo{r.serverInfo()}})
	case *enrp.Error:
		r.log.Debug("peer reported an ENRP error", "peer", hexID(peer), "causes", m.Error.Error())
	default:
		r.log.Debug("ignoring ENRP message", "type", m.Type(), "peer", hexID(peer))
	}
}

// presence builds our ENRP_PRESENCE for a peer.
func (r *Registrar) presence(peer uint32, replyRequired bool) *enrp.Presence {
	return &enrp.Presence{Header: enrp.Header{Sender: r.id, Receiver: peer}, ReplyRequired: replyRequired,
		Checksum: r.store.Checksum(r.id), ServerInfo: r.serverInfo()}
}

// serverInfo describes our ENRP endpoint (an SCTP transport parameter, as
// RFC 5354 and RSPLIB expect, even when only TCP listens).
func (r *Registrar) serverInfo() asap.ServerInfo {
	t := asap.Transport{Kind: asap.ParamSCTPTransport, Use: asap.UseData}
	for _, na := range r.enrpLn.Addrs() {
		var ips []net.IP
		var port int
		switch v := na.(type) {
		case *net.TCPAddr:
			ips, port = []net.IP{v.IP}, v.Port
		case *sctp.SCTPAddr:
			for _, ia := range v.IPAddrs {
				ips = append(ips, ia.IP)
			}
			port = v.Port
		}
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip); ok && !a.IsUnspecified() {
				a = a.Unmap()
				dup := false
				for _, x := range t.Addrs {
					dup = dup || x == a
				}
				if !dup {
					t.Addrs = append(t.Addrs, a)
				}
			}
		}
		if t.Port == 0 {
			t.Port = uint16(port)
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
	next, more := r.store.Iterate(after, maxPEsPerTableResponse, owner, func(pe store.PE) bool {
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
