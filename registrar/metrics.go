package registrar

import (
	"sync"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the registrar's Prometheus metrics (a registry per
// registrar, so several can run in one process).
type metrics struct {
	reg *prometheus.Registry

	registrations    *prometheus.CounterVec
	deregistrations  prometheus.Counter
	resolutions      *prometheus.CounterVec
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
	appliedEntries   prometheus.Counter
}

func newMetrics(r *Registrar) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{reg: reg}
	m.registrations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_registrations_total",
		Help: "ASAP registrations by result: accepted (committed), refreshed (no change, no raft write), rejected."}, []string{"result"})
	m.deregistrations = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_deregistrations_total", Help: "ASAP deregistrations received."})
	m.resolutions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_resolutions_total",
		Help: "ASAP handle resolutions by result: ok, unknown_pool, rate_limited."}, []string{"result"})
	m.keepAlivesSent = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_keepalives_sent_total", Help: "ENDPOINT_KEEP_ALIVE messages sent to PEs."})
	m.keepAliveAcks = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_keepalive_acks_total", Help: "ENDPOINT_KEEP_ALIVE_ACK messages received."})
	m.keepAlivesMissed = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_keepalives_missed_total", Help: "Keep-alives not acknowledged in time (the PE was removed)."})
	m.unreachable = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_unreachable_reports_total",
		Help: "ENDPOINT_UNREACHABLE reports: counted or rate_limited."}, []string{"result"})
	m.removals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_pe_removals_total",
		Help: "PEs removed by this registrar, by reason."}, []string{"reason"})
	m.removalFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_pe_removal_failures_total",
		Help: "PE removals that did not commit (no quorum, a handlespace fault), by reason; the PE stays supervised and the removal is retried."}, []string{"reason"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rsp_errors_total",
		Help: "Operation Error causes sent to peers, by cause code."}, []string{"cause"})
	m.malformed = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_malformed_messages_total", Help: "Messages that failed to decode."})
	m.conns = prometheus.NewGauge(prometheus.GaugeOpts{Name: "rsp_asap_connections", Help: "Open ASAP connections."})
	m.commit = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rsp_raft_commit_seconds",
		Help: "Time from proposing a handlespace change to its commit.", Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16)})
	m.appliedEntries = prometheus.NewCounter(prometheus.CounterOpts{Name: "rsp_raft_applied_entries_total", Help: "Raft entries applied to the handlespace."})
	for _, c := range []prometheus.Collector{m.registrations, m.deregistrations, m.resolutions, m.keepAlivesSent,
		m.keepAliveAcks, m.keepAlivesMissed, m.unreachable, m.removals, m.removalFailures, m.errors, m.malformed, m.conns, m.commit, m.appliedEntries} {
		f(c)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_storage_fault",
		Help: "1 while a file of the data dir cannot be written (full disk, I/O error): writes are refused."},
		func() float64 {
			if r.node != nil && r.node.Fault() != nil {
				return 1
			}
			return 0
		}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_pools", Help: "Pools in the handlespace."},
		func() float64 { p, _ := r.store.Counts(); return float64(p) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_pes", Help: "PEs in the handlespace."},
		func() float64 { _, n := r.store.Counts(); return float64(n) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rsp_owned_pes", Help: "PEs this registrar is home for."},
		func() float64 { return float64(r.live.count()) }))
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) applied(n int) { m.appliedEntries.Add(float64(n)) }

// raft and memberlist report through hashicorp/go-metrics' global sink;
// it is bridged once per process into a registry every registrar's
// /metrics also serves.
var (
	bridgeOnce sync.Once
	bridgeReg  = prometheus.NewRegistry()
)

func bridgeHashicorpMetrics() {
	bridgeOnce.Do(func() {
		sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: bridgeReg, Expiration: time.Minute})
		if err != nil {
			return
		}
		cfg := gometrics.DefaultConfig("rsp")
		cfg.EnableHostname = false
		cfg.EnableRuntimeMetrics = false
		_, _ = gometrics.NewGlobal(cfg, sink)
	})
}

func (m *metrics) gatherers() prometheus.Gatherers {
	bridgeHashicorpMetrics()
	return prometheus.Gatherers{m.reg, bridgeReg}
}
