package registrar_test

import (
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
)

// Ensure ENDPOINT_UNREACHABLE reports count cluster-wide: reports that
// PUs send to different registrars of a cluster are passed to the PE's
// home and counted there together (three reporters, one at each
// registrar, remove a PE that does not answer, where no registrar alone
// heard three), and the PE's keep-alive answers at its home reset the
// count, whichever registrar the reports came in at.
func TestUnreachableReportsCountClusterWide(t *testing.T) {
	rs := startCluster(t, 3, func(c *registrar.Config) {
		c.KeepAliveInterval = registrar.Duration(time.Hour) // only reports probe
		// Only the count removes a PE here, never the keep-alive timeout.
		c.KeepAliveTimeout = registrar.Duration(time.Hour)
		c.MaxBadPEReports = 3
	})
	home, b, c := rs[0], rs[1], rs[2]
	counted := func() float64 { return metricValue(t, home, `rsp_unreachable_reports_total{result="counted"}`) }
	acks := func() float64 { return metricValue(t, home, `rsp_keepalive_acks_total`) }
	present := func(r *testRegistrar, id uint32) bool { _, ok := r.Handlespace().Lookup("pool", id); return ok }

	// A PE that answers its keep-alives: every report probes it at its
	// home, and its answer resets the count.
	alive := dial(t, home, true)
	mustRegister(t, alive, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	// A PE that does not answer (frozen).
	frozen := dial(t, home, false)
	mustRegister(t, frozen, "pool", testPE(2, 7002, asap.Policy{Type: asap.PolicyRoundRobin}))
	for _, r := range []*testRegistrar{b, c} {
		waitFor(t, 10*time.Second, "the PEs replicated to every registrar", func() bool { return present(r, 1) && present(r, 2) })
	}

	// The live PE, reported by one host at each registrar: each report
	// reaches the home, which probes the PE; the test waits for the ACK
	// each time, so no three reports are ever counted together.
	for i, at := range []struct {
		r    *testRegistrar
		from string
	}{{b, "127.0.0.2"}, {c, "127.0.0.3"}, {home, "127.0.0.4"}} {
		before := acks()
		dialFrom(t, at.r, at.from).send(&asap.EndpointUnreachable{PoolHandle: "pool", ID: 1})
		waitFor(t, 20*time.Second, "the home's keep-alive for report "+string(rune('1'+i))+" answered", func() bool { return acks() > before })
	}
	if !present(home, 1) {
		t.Fatal("three reports removed a PE that answered the keep-alive each of them triggered")
	}

	// The frozen PE, reported by one host at each registrar: the reports
	// at the two others are passed to the home and counted there ...
	base := counted()
	dialFrom(t, b, "127.0.0.2").send(&asap.EndpointUnreachable{PoolHandle: "pool", ID: 2})
	dialFrom(t, c, "127.0.0.3").send(&asap.EndpointUnreachable{PoolHandle: "pool", ID: 2})
	waitFor(t, 20*time.Second, "the two reports at the other registrars counted at the PE's home", func() bool { return counted() >= base+2 })
	for _, r := range []*testRegistrar{b, c} {
		if n := metricValue(t, r, `rsp_unreachable_reports_total{result="passed_to_home"}`); n < 2 {
			t.Errorf("registrar %08x passed %v reports to the PEs' home, want 2 (one per PE)", r.ID(), n)
		}
	}
	if !present(home, 2) {
		t.Fatal("two reporters removed the PE (max_bad_pe_reports is 3)")
	}
	// ... and the third reporter, at the home, makes three.
	dialFrom(t, home, "127.0.0.4").send(&asap.EndpointUnreachable{PoolHandle: "pool", ID: 2})
	for _, r := range rs {
		waitFor(t, 20*time.Second, "the PE three hosts reported removed everywhere", func() bool { return !present(r, 2) })
	}
	if n := metricValue(t, home, `rsp_pe_removals_total{reason="unreachable reports"}`); n != 1 {
		t.Errorf("removals for unreachable reports at the home: %v, want 1", n)
	}
	if !present(home, 1) {
		t.Error("the live PE is gone")
	}
}
