package registrar_test

import (
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
)

// closedSoon reports whether the registrar closed the client's
// connection (a refused connection is closed at once).
func closedSoon(cl *client) bool {
	select {
	case _, ok := <-cl.in:
		return !ok
	case <-time.After(10 * time.Second):
		return false
	}
}

// Ensure the connection limits close what goes beyond them and count it,
// while the admin API answers and the PEs already connected are served;
// and that one connection registers at most max_pes_per_connection PEs.
func TestConnectionLimits(t *testing.T) {
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.MaxConnections = 4
		c.MaxConnectionsPerAddress = 2
		c.MaxPEsPerConnection = 2
	})
	pe := dial(t, r, true)
	rr := asap.Policy{Type: asap.PolicyRoundRobin}
	mustRegister(t, pe, "pool", testPE(1, 7001, rr))
	mustRegister(t, pe, "pool", testPE(2, 7002, rr))
	if resp := register(t, pe, "pool", testPE(3, 7003, rr)); !resp.Reject || resp.Error.First() != asap.CauseLackOfResources {
		t.Fatalf("a third PE on a connection with max_pes_per_connection 2: %+v, want refused (lack of resources)", resp)
	}
	if resp, _ := pe.call(&asap.Deregistration{PoolHandle: "pool", ID: 2}).(*asap.DeregistrationResponse); resp == nil || resp.Error != nil {
		t.Fatalf("deregistration: %+v", resp)
	}
	mustRegister(t, pe, "pool", testPE(3, 7003, rr)) // the slot is free again

	// Each connection is served before the next is made (a round trip):
	// connections are admitted by their serving goroutines, in any order.
	pu := dial(t, r, false) // 127.0.0.1: 2 of 2
	resolve(t, pu, "pool", 1)
	if extra := dial(t, r, false); !closedSoon(extra) {
		t.Fatal("a third connection from 127.0.0.1 (max_connections_per_address 2) was not closed")
	}
	resolve(t, dialFrom(t, r, "127.0.0.2"), "pool", 1)
	resolve(t, dialFrom(t, r, "127.0.0.3"), "pool", 1) // 4 of 4
	if extra := dialFrom(t, r, "127.0.0.4"); !closedSoon(extra) {
		t.Fatal("a fifth connection (max_connections 4) was not closed")
	}
	waitFor(t, 10*time.Second, "both refusals counted", func() bool {
		return metricValue(t, r, `rsp_connections_refused_total{reason="per_address"}`) == 1 &&
			metricValue(t, r, `rsp_connections_refused_total{reason="global"}`) == 1
	})
	if n := metricValue(t, r, `rsp_pe_limit_refusals_total`); n != 1 {
		t.Errorf("rsp_pe_limit_refusals_total %v, want 1", n)
	}
	if res := resolve(t, pu, "pool", 5); len(res.PEs) != 2 {
		t.Fatalf("the connections already open are not served: %+v", res)
	}
}
