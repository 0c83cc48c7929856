package registrar_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// Ensure the per-connection rate limits drop resolutions beyond the
// burst without an answer and ignore unreachability reports beyond
// theirs, and that a flooding PU does not starve a polite one on the same
// host (the limits are per connection).
func TestRateLimits(t *testing.T) {
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.ResolutionRate, c.ResolutionBurst = 0.001, 2
		c.UnreachableRate, c.UnreachableBurst = 0.001, 2
	})
	pe := dial(t, r, true)
	mustRegister(t, pe, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	pu := dial(t, r, false)
	for i := 0; i < 2; i++ {
		if resp := resolve(t, pu, "pool", 1); resp.Error != nil {
			t.Fatalf("resolution %d within the burst: %v", i, resp.Error)
		}
	}
	for i := 0; i < 50; i++ { // the flood
		pu.send(&asap.HandleResolution{PoolHandle: "pool"})
	}
	waitFor(t, 10*time.Second, "the flood dropped", func() bool {
		return metricValue(t, r, `rsp_resolutions_total{result="rate_limited"}`) == 50
	})
	// Nothing was answered: the next message the flooder gets is the
	// answer to a deregistration sent after the flood.
	if m := pu.call(&asap.Deregistration{PoolHandle: "pool", ID: 99}); m.Type() != asap.TypeDeregistrationResponse {
		t.Fatalf("after the dropped resolutions the PU got %v, want only the deregistration response", m.Type())
	}
	polite := dial(t, r, false)
	for i := 0; i < 2; i++ {
		if resp := resolve(t, polite, "pool", 1); resp.Error != nil || len(resp.PEs) != 1 {
			t.Fatalf("the polite PU on the same host: resolution %d got %+v, want the PE", i, resp)
		}
	}
	// Three reports, but only two count: the PE stays (MaxBadPEReports 3).
	for i := 0; i < 3; i++ {
		pu.send(&asap.EndpointUnreachable{PoolHandle: "pool", ID: 1})
	}
	waitFor(t, 10*time.Second, "the three reports handled (two counted, one rate limited)", func() bool {
		return metricValue(t, r, `rsp_unreachable_reports_total{result="counted"}`) == 2 &&
			metricValue(t, r, `rsp_unreachable_reports_total{result="rate_limited"}`) == 1
	})
	if _, ok := r.Handlespace().Lookup("pool", 1); !ok {
		t.Error("rate-limited reports removed the PE")
	}
	if n := metricValue(t, r, "rsp_pe_removals_total"); n != 0 {
		t.Errorf("rsp_pe_removals_total %v after rate-limited reports, want 0", n)
	}
}

// metricValue reads a series from the registrar's /metrics.
func metricValue(t testing.TB, r *testRegistrar, series string) float64 {
	t.Helper()
	return registrartest.Metric(t, r.HTTPAddr(), series)
}

// Ensure /metrics serves the registrar's metrics and the bridged raft
// metrics, with the counts of what happened, and leaves out raft's
// per-write metrics (hotRaftMetrics).
func TestMetricsEndpoint(t *testing.T) {
	r := startRegistrar(t, "", nil)
	pe := dial(t, r, true)
	mustRegister(t, pe, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	resolve(t, dial(t, r, false), "pool", 1)
	// Counters move just after the answer goes out: wait for them all.
	wants := []string{
		"rsp_raft_thread_main_saturation_count", // raft's own, bridged from go-metrics
		`rsp_registrations_total{result="accepted"} 1`,
		`rsp_resolutions_total{result="ok"} 1`,
		"rsp_pes 1", "rsp_pools 1", "rsp_owned_pes 1",
		"rsp_raft_commit_seconds_count 1",
	}
	var missing []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		missing = missing[:0]
		resp, err := http.Get("http://" + r.HTTPAddr() + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, want := range wants {
				if !strings.Contains(string(b), want) {
					missing = append(missing, want)
				}
			}
			if len(missing) == 0 {
				for _, hot := range []string{"rsp_raft_apply", "rsp_raft_commitTime", "rsp_raft_commitNumLogs", "rsp_raft_fsm_apply", "rsp_raft_leader_dispatchLog"} {
					if strings.Contains(string(b), hot) {
						t.Errorf("/metrics has raft's per-write %s, which the bridge leaves out", hot)
					}
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s /metrics lacks %q (GET error %v)", missing, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Ensure message_rate drops what a connection sends beyond it, whatever
// the message, and counts it.
func TestMessageRate(t *testing.T) {
	r := startRegistrar(t, "", func(c *registrar.Config) { c.MessageRate = 0.001 }) // a burst of 1
	pu := dial(t, r, false)
	if resp := resolve(t, pu, "pool", 1); resp.Error == nil || resp.Error.First() != asap.CauseUnknownPoolHandle {
		t.Fatalf("the first message: %+v, want an answer (unknown pool)", resp)
	}
	for i := 0; i < 5; i++ {
		pu.send(&asap.Deregistration{PoolHandle: "pool", ID: 1})
	}
	waitFor(t, 10*time.Second, "the five messages beyond the rate dropped", func() bool {
		return metricValue(t, r, "rsp_messages_rate_limited_total") == 5
	})
	select {
	case m := <-pu.in:
		t.Fatalf("a dropped message was answered: %v", m.Type())
	default:
	}
}
