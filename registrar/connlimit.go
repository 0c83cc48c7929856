package registrar

import (
	"math"
	"net/netip"
	"sync"

	"github.com/rserpool-go/registrar/transport"
)

// Connection limits on the ASAP and ENRP listeners: a global cap and one
// per source address. A connection beyond them is closed at once (after
// the accept, so the backlog does not fill) and counted in
// rsp_connections_refused_total{reason}. The global cap stays below the
// process's file descriptor limit by fdReserve, which keeps descriptors
// for the admin API, raft and gossip, the data files and the
// registrar's own dials to PEs (keep-alives of PEs it supervises): at the
// cap, the admin API still answers and existing PEs are still served.

// fdReserve is how many file descriptors the global cap leaves free.
// Under an open file limit below 2*fdReserve the reserve is half the
// limit (the agent warns at start: see lowFileLimit).
const fdReserve = 256

type connLimits struct {
	mu     sync.Mutex
	total  int
	byAddr map[netip.Addr]int
}

// maxConnections is the effective global cap: max_connections, bounded
// by the file descriptor limit less the reserve. It reads the limit each
// time: an operator may change it while the registrar runs (prlimit).
func (r *Registrar) maxConnections() int {
	return connCap(r.cfg.MaxConnections, fileLimit())
}

// connCap is the global cap for max_connections maxConns (0: none) under
// the open file limit fdLimit (0: unknown, no bound from it): at most
// fdLimit less fdReserve, or half of fdLimit when that is below
// 2*fdReserve, and at least 1. 0 means no cap.
func connCap(maxConns int, fdLimit uint64) int {
	if fdLimit == 0 || fdLimit > math.MaxInt32 {
		return maxConns
	}
	reserve := uint64(fdReserve)
	if lowFileLimit(fdLimit) {
		reserve = fdLimit / 2
	}
	fd := max(int(fdLimit-reserve), 1)
	if maxConns == 0 || fd < maxConns {
		return fd
	}
	return maxConns
}

// lowFileLimit reports whether an open file limit leaves less than
// fdReserve descriptors beside as many connections.
func lowFileLimit(fdLimit uint64) bool { return fdLimit > 0 && fdLimit < 2*fdReserve }

// admit counts an accepted connection, or says why it is refused.
func (r *Registrar) admit(c transport.Conn) (release func(), reason string) {
	var addr netip.Addr
	if pa := c.PeerAddrs(); len(pa) > 0 {
		addr = pa[0].Unmap()
	}
	l := &r.connLimits
	l.mu.Lock()
	defer l.mu.Unlock()
	if max := r.maxConnections(); max > 0 && l.total >= max {
		return nil, "global"
	}
	if per := r.cfg.MaxConnectionsPerAddress; per > 0 && l.byAddr[addr] >= per {
		return nil, "per_address"
	}
	if l.byAddr == nil {
		l.byAddr = map[netip.Addr]int{}
	}
	l.total++
	l.byAddr[addr]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.total--
		if l.byAddr[addr]--; l.byAddr[addr] <= 0 {
			delete(l.byAddr, addr)
		}
	}, ""
}

// limited wraps a listener's serve function with the connection limits.
func (r *Registrar) limited(serve func(transport.Conn)) func(transport.Conn) {
	return r.admitted(func(c transport.Conn, release func()) {
		defer release()
		serve(c)
	})
}

// admitted is limited for a serve function that may return before its
// connection ends: it calls release when the connection ends.
func (r *Registrar) admitted(serve func(transport.Conn, func())) func(transport.Conn) {
	return func(c transport.Conn) {
		release, reason := r.admit(c)
		if release == nil {
			r.metrics.connsRefused.WithLabelValues(reason).Inc()
			r.log.Debug("connection refused: limit reached", "remote", c.RemoteAddr().String(), "limit", reason)
			c.Close()
			return
		}
		serve(c, release)
	}
}
