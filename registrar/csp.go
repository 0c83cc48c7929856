package registrar

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/rserpool-go/registrar/asap/csp"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/transport"
)

// Component Status Protocol reports (RSPLIB's monitoring, asap/csp): with
// CSPServer set, the registrar sends cspmonitor its status every
// CSPInterval, as RSPLIB's registrar does (src/rspregistrar-global.c,
// registrarGetReportFunction), and a final report when it stops.

// cspAddr resolves a CSP monitor address, host[:port] (port 2960 when
// left out).
func cspAddr(s string) (*net.UDPAddr, error) {
	hostport, err := csp.HostPort(s)
	if err != nil {
		return nil, err
	}
	a, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return nil, fmt.Errorf("CSP monitor %q: %v", s, err)
	}
	return a, nil
}

// startCSP starts the reporter when CSPServer is set.
func (r *Registrar) startCSP() error {
	if r.cfg.CSPServer == "" {
		return nil
	}
	addr, err := cspAddr(r.cfg.CSPServer)
	if err != nil {
		return fmt.Errorf("csp_server: %w", err)
	}
	conn, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		return fmt.Errorf("csp_server %s: %w", addr, err)
	}
	log := r.log.Named("csp")
	interval := r.cfg.CSPInterval.D()
	start := time.Now()
	send := func(rep *csp.Report) {
		rep.Sender = csp.ID(csp.GroupRegistrar, uint64(r.id))
		rep.Time = uint64(time.Since(start).Microseconds())
		rep.Interval = uint32(interval.Microseconds())
		b, err := csp.Append(nil, rep)
		if err == nil {
			_, err = conn.Write(b)
		}
		if err != nil { // the monitor may be down: its reports are best effort
			log.Debug("status report not sent", "error", err)
		}
	}
	ok := r.goFunc(func() {
		defer conn.Close()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			send(r.cspReport())
			select {
			case <-r.quit:
				// RSPLIB's final report: the F flag, no text, load 0.
				send(&csp.Report{Final: true, Workload: csp.Workload(0)})
				return
			case <-t.C:
			}
		}
	})
	if !ok {
		conn.Close()
		return nil
	}
	log.Info("reporting status to a CSP monitor", "monitor", addr.String(), "interval", interval)
	return nil
}

// cspReport is the registrar's status: RSPLIB's text ("3[1] PEs in 2
// Pools, 1 Peer": PEs, of them those this registrar is home for, pools,
// peers), its location and one association per peer registrar: the
// foreign ENRP peers over their transport, the other cluster members over
// TCP (raft and gossip), all with the ENRP PPID and an unknown duration,
// as RSPLIB lists its peers.
func (r *Registrar) cspReport() *csp.Report {
	pools, pes := r.hs.Counts()
	var assocs []csp.Association
	for _, m := range r.hs.Members() {
		if m.Meta.ID == 0 || m.Meta.ID == r.id || m.Status != cluster.StatusAlive {
			continue
		}
		assocs = append(assocs, csp.Association{Receiver: csp.ID(csp.GroupRegistrar, uint64(m.Meta.ID)),
			Duration: csp.DurationUnknown, Protocol: ipProtoTCP, PPID: transport.PPIDENRP})
	}
	for _, p := range r.peers.cspPeers() {
		assocs = append(assocs, csp.Association{Receiver: csp.ID(csp.GroupRegistrar, uint64(p.id)),
			Duration: csp.DurationUnknown, Protocol: p.proto, PPID: transport.PPIDENRP})
	}
	if len(assocs) > csp.MaxAssociations {
		assocs = assocs[:csp.MaxAssociations]
	}
	var ips []netip.Addr
	var port uint16
	for _, a := range r.asapLn.Addrs() {
		if port == 0 {
			port = a.Port
		}
		for _, ip := range a.Addrs {
			if !slices.Contains(ips, ip) { // SCTP and TCP on the same address
				ips = append(ips, ip)
			}
		}
	}
	return &csp.Report{
		Status: fmt.Sprintf("%d[%d] PEs in %d Pool%s, %d Peer%s", pes, r.live.count(), pools, plural(pools),
			len(assocs), plural(len(assocs))),
		Location:     csp.Location(hostname(), cspAddrs(ips), port),
		Workload:     csp.WorkloadUnknown,
		Associations: assocs,
	}
}

// IP protocol numbers of CSP association entries.
const (
	ipProtoTCP  = 6
	ipProtoSCTP = 132
)

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// cspPeer is a foreign ENRP peer as a CSP report lists it.
type cspPeer struct {
	id    uint32
	proto uint16
}

// cspPeers lists the foreign ENRP peers whose ID is known, with the
// transport of their association (SCTP when there is none yet, as RSPLIB
// reports every peer of its list).
func (p *peers) cspPeers() []cspPeer {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []cspPeer
	for _, fp := range p.all {
		if fp.id == 0 {
			continue
		}
		proto := uint16(ipProtoSCTP)
		for _, ec := range []*enrpConn{fp.inbound, fp.conn} {
			if ec != nil && ec.c.Kind() == transport.KindTCP {
				proto = ipProtoTCP
			}
		}
		out = append(out, cspPeer{fp.id, proto})
	}
	return out
}

// cspAddrs are the addresses a CSP location names: the given ones
// without wildcard and loopback addresses, else the host's (IPv4 first).
func cspAddrs(addrs []netip.Addr) []netip.Addr {
	var use []netip.Addr
	for _, a := range addrs {
		if !a.IsUnspecified() && !a.IsLoopback() {
			use = append(use, a.Unmap())
		}
	}
	if len(use) == 0 {
		use = append(hostAddrs(true), hostAddrs(false)...)
	}
	return use
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
