package registrar_test

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/csp"
	"github.com/rserpool-go/registrar/registrar"
)

// cspMonitor is a UDP socket that collects CSP reports.
type cspMonitor struct {
	t  *testing.T
	pc net.PacketConn
	ch chan *csp.Report
}

func newCSPMonitor(t *testing.T) *cspMonitor {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &cspMonitor{t: t, pc: pc, ch: make(chan *csp.Report, 256)}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				close(m.ch)
				return
			}
			r, err := csp.Parse(buf[:n])
			if err != nil {
				t.Errorf("monitor received a report that does not parse: %v", err)
				continue
			}
			m.ch <- r
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return m
}

// waitReport waits for a report that match accepts and says what came.
func (m *cspMonitor) waitReport(d time.Duration, what string, match func(*csp.Report) bool) *csp.Report {
	m.t.Helper()
	timeout := time.After(d)
	var last *csp.Report
	for {
		select {
		case r, ok := <-m.ch:
			if !ok {
				m.t.Fatalf("monitor closed while waiting for %s", what)
			}
			if match(r) {
				return r
			}
			last = r
		case <-timeout:
			m.t.Fatalf("no CSP report with %s within %v; last: %+v", what, d, last)
		}
	}
}

// Ensure that a registrar with -csp-server reports its status every
// interval with RSPLIB's status text, its ID in the registrar group and
// its location, follows registrations, and sends a final report when it
// stops.
func TestCSPReports(t *testing.T) {
	mon := newCSPMonitor(t)
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.CSPServer = mon.pc.LocalAddr().String()
		c.CSPInterval = registrar.Duration(250 * time.Millisecond)
	})
	id := csp.ID(csp.GroupRegistrar, uint64(r.ID()))
	first := mon.waitReport(10*time.Second, "the empty registrar's status", func(rep *csp.Report) bool {
		return rep.Sender == id && rep.Status == "0[0] PEs in 0 Pools, 0 Peers"
	})
	host, _ := os.Hostname()
	if first.Final || first.Interval != 250000 || first.Workload != csp.WorkloadUnknown || len(first.Associations) != 0 ||
		!strings.HasPrefix(first.Location, host+": ") {
		t.Errorf("first report %+v: want not final, interval 250000 µs, workload unknown, no associations, location %q...", first, host+": ")
	}
	pe := dial(t, r, true)
	mustRegister(t, pe, "csp", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	mustRegister(t, pe, "csp2", testPE(2, 7002, asap.Policy{Type: asap.PolicyRoundRobin}))
	later := mon.waitReport(10*time.Second, "two PEs in two pools", func(rep *csp.Report) bool {
		return rep.Sender == id && rep.Status == "2[2] PEs in 2 Pools, 0 Peers"
	})
	if later.Time <= first.Time {
		t.Errorf("time stamps %d then %d: want increasing µs since start", first.Time, later.Time)
	}
	r.Stop()
	mon.waitReport(10*time.Second, "the final flag", func(rep *csp.Report) bool {
		return rep.Sender == id && rep.Final && rep.Status == "" && rep.Location == "" && rep.Workload == 0
	})
}

// Ensure that a bad CSP monitor address or interval is refused naming
// its key.
func TestCSPConfigErrors(t *testing.T) {
	c := registrar.DefaultConfig()
	c.CSPServer = "no:such:host:x"
	c.CSPInterval = registrar.Duration(100 * time.Millisecond)
	c.DistanceStep = 0
	err := c.Validate()
	for _, key := range []string{"csp_server", "csp_interval", "distance_step"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate: %v; want a problem with %s", err, key)
		}
	}
}
