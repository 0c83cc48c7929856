package registrar_test

import (
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar"
)

// Ensure idle ASAP connections park (no goroutine reads them) and are
// served as before when they speak again: a parked PE answers keep-alives
// and is never removed, a parked PU resolves, a PU closing while parked
// is cleaned up (its connection no longer counted), and the registrar
// stops with connections parked.
func TestParkIdleConnections(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.ConnParkAfter = registrar.Duration(20 * time.Millisecond)
		c.KeepAliveInterval = registrar.Duration(300 * time.Millisecond)
		c.KeepAliveTimeout = registrar.Duration(2 * time.Second)
	})
	pe := dial(t, r, true)
	mustRegister(t, pe, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	pu := dial(t, r, false)
	closing := dial(t, r, false)
	waitFor(t, 10*time.Second, "three idle connections parked", func() bool {
		return metricValue(t, r, "rsp_asap_connections_parked") == 3
	})
	if n := metricValue(t, r, "rsp_asap_connections"); n != 3 {
		t.Fatalf("rsp_asap_connections = %v with 3 parked, want 3", n)
	}

	// The PE is woken by every keep-alive ACK, and parks again between.
	since := pe.kas.Load()
	waitFor(t, 20*time.Second, "five more keep-alives answered", func() bool { return pe.kas.Load() >= since+5 })
	if _, ok := r.Handlespace().Lookup("pool", 1); !ok {
		t.Fatal("a PE answering keep-alives on a parked connection was removed")
	}

	// A parked PU resolves, several times, parking in between.
	for i := range 3 {
		waitFor(t, 10*time.Second, "the PU's connection parked", func() bool {
			return metricValue(t, r, "rsp_asap_connections_parked") >= 2 && pe.kas.Load() > 0
		})
		resp, ok := pu.call(&asap.HandleResolution{PoolHandle: "pool"}).(*asap.HandleResolutionResponse)
		if !ok || resp.Error != nil || len(resp.PEs) != 1 || resp.PEs[0].ID != 1 {
			t.Fatalf("resolution %d on a parked connection: %+v", i, resp)
		}
	}

	// A connection closed by its peer while parked ends.
	waitFor(t, 10*time.Second, "the closing connection parked", func() bool {
		return metricValue(t, r, "rsp_asap_connections_parked") >= 2
	})
	closing.c.Close()
	waitFor(t, 10*time.Second, "the closed connection no longer counted", func() bool {
		return metricValue(t, r, "rsp_asap_connections") == 2
	})
}

// Ensure conn_park_after 0 keeps every connection's goroutine: nothing
// parks.
func TestParkIdleConnections_Off(t *testing.T) {
	r := startRegistrar(t, "", func(c *registrar.Config) { c.ConnParkAfter = 0 })
	pu := dial(t, r, false)
	if resp, ok := pu.call(&asap.HandleResolution{PoolHandle: "pool"}).(*asap.HandleResolutionResponse); !ok || resp.Error == nil {
		t.Fatalf("resolution of an unknown pool: %+v", resp)
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if n := metricValue(t, r, "rsp_asap_connections_parked"); n != 0 {
			t.Fatalf("rsp_asap_connections_parked = %v with conn_park_after 0, want 0", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
