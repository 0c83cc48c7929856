package registrar

import (
	"fmt"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
)

// ENDPOINT_UNREACHABLE reports count cluster-wide: a registrar that gets
// one for a PE homed at another member of its cluster passes it to that
// member (over gossip's reliable stream), which counts the reporters and
// probes the PE like any report it gets itself, and whose keep-alive
// answers reset the count. Reports of a PE homed here or at a foreign
// (ENRP) peer count here.

// reportQueue is how many reports wait to be passed on; more are
// counted here instead.
const reportQueue = 256

type outReport struct {
	home uint32
	rep  cluster.Report
}

// unreachable handles ASAP_ENDPOINT_UNREACHABLE: the PE is removed after
// reports from MaxBadPEReports distinct reporters, or when the keep-alive
// a report triggers goes unanswered (liveness.report).
func (r *Registrar) unreachable(ac *asapConn, m *asap.EndpointUnreachable) {
	if !r.limits.allowUnreachable(&ac.unrBucket) {
		r.metrics.unreachable.WithLabelValues("rate_limited").Inc()
		return
	}
	if cur, ok := r.hs.Lookup(m.PoolHandle, m.ID); ok && cur.Element.Home != r.id && r.aliveMember(cur.Element.Home) {
		select {
		case r.reportOut <- outReport{home: cur.Element.Home, rep: cluster.Report{Pool: m.PoolHandle, PE: m.ID, Reporter: ac.remote}}:
			return
		default: // the queue is full: count it here
		}
	}
	r.countReport(cluster.Report{Pool: m.PoolHandle, PE: m.ID, Reporter: ac.remote})
}

// countReport counts a report here, and removes the PE when enough
// reporters agree.
func (r *Registrar) countReport(rep cluster.Report) {
	r.metrics.unreachable.WithLabelValues("counted").Inc()
	if r.live.report(rep.Pool, rep.PE, rep.Reporter, time.Now()) {
		r.live.remove(rep.Pool, rep.PE, reasonUnreachable)
	}
}

// aliveMember reports whether id is another alive registrar of our
// cluster.
func (r *Registrar) aliveMember(id uint32) bool {
	for _, m := range r.hs.Members() {
		if m.Meta.ID == id {
			return m.Status == cluster.StatusAlive
		}
	}
	return false
}

// runReports passes queued reports to the PEs' homes (counting one here
// when its home cannot be reached) and counts those other members pass
// to us. It ends with quit.
func (r *Registrar) runReports() {
	in := r.hs.Reports()
	for {
		select {
		case <-r.quit:
			return
		case o := <-r.reportOut:
			if err := r.hs.SendReport(o.home, o.rep); err != nil {
				r.log.Debug("cannot pass an unreachability report to the PE's home: counting it here",
					"pe", fmt.Sprintf("%08x", o.rep.PE), "home", hexID(o.home), "error", err)
				r.countReport(o.rep)
				continue
			}
			r.metrics.unreachable.WithLabelValues("passed_to_home").Inc()
		case rep := <-in:
			r.countReport(rep)
		}
	}
}
