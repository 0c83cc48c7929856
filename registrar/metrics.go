package registrar

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rserpool-go/registrar/cluster"
)

// metrics are the registrar's Prometheus metrics (a registry per
// registrar, so several can run in one process).
type metrics struct {
	reg *prometheus.Registry

	registrations    *prometheus.CounterVec
	deregistrations  prometheus.Counter
	resolutions      *prometheus.CounterVec
	resolutionsOK    prometheus.Counter // resolutions "ok", looked up once
	refreshed        prometheus.Counter // registrations "refreshed", looked up once
	accepted         prometheus.Counter // registrations "accepted", looked up once
	keepAlivesSent   prometheus.Counter
	keepAliveAcks    prometheus.Counter
	keepAlivesMissed prometheus.Counter
	unreachable      *prometheus.CounterVec
	removals         *prometheus.CounterVec
	removalFailures  *prometheus.CounterVec
	errors           *prometheus.CounterVec
	malformed        prometheus.Counter
	conns            prometheus.Gauge
	commit           prometheus.Histogram
	handleUpdates    *prometheus.CounterVec
	enrpRefused      prometheus.Counter
	connsRefused     *prometheus.CounterVec
	pesRefused       prometheus.Counter
	messagesDropped  prometheus.Counter
	watchClients     atomic.Int64
	watchDropped     prometheus.Counter
	// poolTop is how many pools rsp_pool_pes shows (live: SIGHUP).
	poolTop atomic.Int64
}

// newMetrics makes the registrar's metrics; r.hs must be open.
func newMetrics(r *Registrar) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{reg: reg}
	m.registrations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_registrations_total",
		Help: "ASAP registrations by result: accepted (committed), refreshed (no change, no raft write), rejected."}, []string{"result"})
	m.deregistrations = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_deregistrations_total", Help: "ASAP deregistrations received."})
	m.resolutions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_resolutions_total",
		Help: "ASAP handle resolutions by result: ok, unknown_pool, rate_limited."}, []string{"result"})
	m.resolutionsOK = m.resolutions.WithLabelValues("ok")
	m.refreshed = m.registrations.WithLabelValues("refreshed")
	m.accepted = m.registrations.WithLabelValues("accepted")
	m.keepAlivesSent = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_keepalives_sent_total", Help: "ENDPOINT_KEEP_ALIVE messages sent to PEs."})
	m.keepAliveAcks = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_keepalive_acks_total", Help: "ENDPOINT_KEEP_ALIVE_ACK messages received."})
	m.keepAlivesMissed = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_keepalives_missed_total", Help: "Keep-alives not acknowledged in time (the PE was removed)."})
	m.unreachable = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_unreachable_reports_total",
		Help: "ENDPOINT_UNREACHABLE reports: counted (here), passed_to_home (another member of the cluster counts it) or rate_limited."}, []string{"result"})
	m.removals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_pe_removals_total",
		Help: "PEs removed by this registrar, by reason."}, []string{"reason"})
	m.removalFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_pe_removal_failures_total",
		Help: "PE removals that did not commit (no quorum, a handlespace fault), by reason; the PE stays supervised and the removal is retried."}, []string{"reason"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_errors_total",
		Help: "Operation Error causes sent to peers, by cause code."}, []string{"cause"})
	m.malformed = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_malformed_messages_total", Help: "Messages that failed to decode."})
	m.enrpRefused = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_enrp_refused_total",
		Help: "ENRP messages refused because their sender is not an accepted peer (enrp_peers, enrp_peer_networks)."})
	m.connsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_connections_refused_total",
		Help: "ASAP and ENRP connections closed at once because a limit was reached, by limit: global (max_connections, or the file descriptor limit), per_address (max_connections_per_address)."}, []string{"reason"})
	m.pesRefused = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_pe_limit_refusals_total",
		Help: "Registrations refused because their connection has max_pes_per_connection PEs."})
	m.messagesDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_messages_rate_limited_total",
		Help: "ASAP messages dropped because their connection went beyond message_rate."})
	m.conns = prometheus.NewGauge(prometheus.GaugeOpts{Name: "rsp_asap_connections", Help: "Open ASAP connections."})
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_asap_connections_parked",
		Help: "Open ASAP connections parked: idle, with no goroutine reading them (see conn_park_after)."},
		func() float64 {
			if p := r.poller.Load(); p != nil {
				return float64(p.Parked())
			}
			return 0
		}))
	m.commit = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rsp_raft_commit_seconds",
		Help: "Time from proposing a handlespace change to its commit.", Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16)})
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rsp_raft_applied_entries_total", Help: "Raft entries applied to the handlespace."},
		func() float64 { return float64(r.hs.Stats().AppliedEntries) }))
	m.handleUpdates = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_enrp_handle_updates_total",
		Help: "ENRP HANDLE_UPDATE messages exchanged with peers outside the cluster, by direction: sent (one per peer), received."}, []string{"direction"})
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rsp_raft_leader_changes_total",
		Help: "Times this registrar saw a new raft leader (its own elections included)."},
		func() float64 { return float64(r.hs.Stats().LeaderChanges) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_watch_clients", Help: "Open change streams (GET /v1/watch)."},
		func() float64 { return float64(m.watchClients.Load()) }))
	m.watchDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_watch_resyncs_total",
		Help: "Change streams ended with a resync event (the client's index older than the history, or it fell behind)."})
	for _, c := range []prometheus.Collector{m.watchDropped, m.registrations, m.deregistrations, m.resolutions, m.keepAlivesSent,
		m.keepAliveAcks, m.keepAlivesMissed, m.unreachable, m.removals, m.removalFailures, m.errors, m.malformed, m.conns, m.commit,
		m.handleUpdates, m.enrpRefused, m.connsRefused, m.pesRefused, m.messagesDropped} {
		f(c)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_storage_fault",
		Help: "1 while a file of the data dir cannot be written (full disk, I/O error): writes are refused."},
		func() float64 { return b2f(r.hs.Fault() != nil) }))
	// Every series of a fixed label set exists from the start (at 0), so
	// rate() and dashboards work before the first event.
	for vec, labels := range map[*prometheus.CounterVec][]string{
		m.registrations: {"accepted", "refreshed", "rejected"},
		m.resolutions:   {"ok", "unknown_pool", "rate_limited"},
		m.unreachable:   {"counted", "rate_limited", "passed_to_home"},
		m.removals:      {"keep-alive timeout", "lifetime expired"},
		m.handleUpdates: {"sent", "received"},
	} {
		for _, l := range labels {
			vec.WithLabelValues(l)
		}
	}
	m.poolTop.Store(int64(r.cfg.MetricsPoolTop))

	// Gauges computed at each scrape: they never expire.
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_raft_is_leader", Help: "1 when this registrar is the raft leader, else 0."},
		func() float64 { return b2f(r.hs.IsLeader()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_stale",
		Help: "1 when this registrar knows no raft leader (quorum lost or an election running): resolutions come from its local copy and registrations are refused."},
		func() float64 { return b2f(r.hs.Status().Stale()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_raft_last_contact_seconds",
		Help: "Seconds since a follower last heard from the raft leader; 0 on the leader, -1 before it ever heard from one."},
		func() float64 { return r.lastContact() }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_raft_term", Help: "The current raft term."},
		func() float64 { return float64(r.hs.Status().Term) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_raft_voters", Help: "Voters in the raft configuration."},
		func() float64 { return float64(r.voters()) }))
	for _, st := range []string{"alive", "suspect", "failed", "left"} {
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_cluster_members", Help: "Registrars of the cluster as gossip sees them, by status.",
			ConstLabels: prometheus.Labels{"status": st}},
			func() float64 { return float64(r.memberCount(st)) }))
	}
	for _, st := range []string{"up", "probing", "down"} {
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_enrp_peers",
			Help: "ENRP peers outside the cluster by state: up (an association), probing (a PRESENCE awaits its answer), down (none).", ConstLabels: prometheus.Labels{"state": st}},
			func() float64 {
				if r.peers == nil {
					return 0
				}
				return float64(r.peers.peerStates()[st])
			}))
	}
	f(&poolCollector{r: r, desc: prometheus.NewDesc("rsp_pool_pes",
		"PEs of the pools with the most PEs (at most metrics_pool_top pools), by pool handle (binary handles in 0x hex).", []string{"pool"}, nil)})
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_pools", Help: "Pools in the handlespace."},
		func() float64 { p, _ := r.hs.Counts(); return float64(p) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_pes", Help: "PEs in the handlespace."},
		func() float64 { _, n := r.hs.Counts(); return float64(n) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_owned_pes", Help: "PEs this registrar is home for."},
		func() float64 { return float64(r.live.count()) }))
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// poolCollector exports the PE count of the largest pools (bounded, so a
// handlespace of many pools does not flood the metrics).
type poolCollector struct {
	r    *Registrar
	desc *prometheus.Desc
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	n := int(c.r.metrics.poolTop.Load())
	if n == 0 {
		return
	}
	pools := c.r.hs.Pools()
	slices.SortStableFunc(pools, func(a, b cluster.PoolInfo) int { return cmp.Compare(b.PEs, a.PEs) })
	for _, p := range pools[:min(n, len(pools))] {
		h, _ := p.Handle.MarshalText()
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(p.PEs), string(h))
	}
}

// lastContact is what rsp_raft_last_contact_seconds reports.
func (r *Registrar) lastContact() float64 {
	if r.hs.IsLeader() {
		return 0
	}
	t := r.hs.Status().LastContact
	if t.IsZero() {
		return -1
	}
	return time.Since(t).Seconds()
}

func (r *Registrar) voters() int {
	servers, err := r.hs.Servers()
	if err != nil {
		return 0
	}
	n := 0
	for _, s := range servers {
		if s.Suffrage == cluster.Voter {
			n++
		}
	}
	return n
}

func (r *Registrar) memberCount(status string) int {
	n := 0
	for _, m := range r.hs.Members() {
		if m.Status.String() == status {
			n++
		}
	}
	return n
}

// raft and memberlist report through hashicorp/go-metrics' global sink;
// it is bridged once per process into a registry every registrar's
// /metrics also serves.
var (
	bridgeOnce sync.Once
	bridgeReg  = prometheus.NewRegistry()
)

// hotRaftMetrics are raft's metrics of every write (a counter per
// Apply, timers and gauges per dispatched and applied batch) that the
// bridge leaves out: through go-metrics' Prometheus sink each sample
// reads the clock twice and allocates, about 5 % of a registration's
// CPU. rsp_raft_commit_seconds and rsp_raft_applied_entries_total
// measure the same; raft's other metrics (leader contact, replication,
// snapshots, elections) are bridged.
var hotRaftMetrics = []string{
	"rsp.raft.apply",
	"rsp.raft.commitTime",
	"rsp.raft.commitNumLogs",
	"rsp.raft.leader.dispatchLog",
	"rsp.raft.leader.dispatchNumLogs",
	"rsp.raft.fsm.applyBatch",
	"rsp.raft.fsm.enqueue",
	"rsp.raft.fsm.apply",
}

func bridgeHashicorpMetrics() {
	bridgeOnce.Do(func() {
		// Expiration 0: raft's gauges (which raft reports only when they
		// change) stay until the process ends instead of vanishing after a
		// minute.
		sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: bridgeReg, Expiration: 0})
		if err != nil {
			return
		}
		cfg := gometrics.DefaultConfig("rsp")
		cfg.EnableHostname = false
		cfg.EnableRuntimeMetrics = false
		cfg.BlockedPrefixes = hotRaftMetrics
		_, _ = gometrics.NewGlobal(cfg, sink)
	})
}

func (m *metrics) gatherers() prometheus.Gatherers {
	bridgeHashicorpMetrics()
	return prometheus.Gatherers{m.reg, bridgeReg}
}
