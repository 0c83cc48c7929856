package registrar

import (
	"net/netip"
	"sync"
	"syscall"

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
const fdReserve = 256

type connLimits struct {
	mu     sync.Mutex
	total  int
	byAddr map[netip.Addr]int
}

// maxConnections is the effective global cap: max_connections, bounded
// by the file descriptor limit less fdReserve.
func (r *Registrar) maxConnections() int {
	n := r.cfg.MaxConnections
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur > fdReserve*2 {
		if fd := int(lim.Cur) - fdReserve; n == 0 || fd < n {
			n = fd
		}
	}
	return n
}

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
	return func(c transport.Conn) {
		release, reason := r.admit(c)
		if release == nil {
			r.metrics.connsRefused.WithLabelValues(reason).Inc()
			r.log.Debug("connection refused: limit reached", "remote", c.RemoteAddr().String(), "limit", reason)
			c.Close()
			return
		}
		defer release()
		serve(c)
	}
}
