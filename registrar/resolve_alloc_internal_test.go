package registrar

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// resolveOverTCP serves one TCP ASAP connection with r and returns the
// client's end (a bare net.Conn) once the pool holds pes PEs.
func resolveOverTCP(t testing.TB, r *Registrar, pes int) net.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	ln, err := transport.Listen(ctx, "tcp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for id := uint32(1); id <= uint32(pes); id++ {
		p := unitPE(id, asap.PolicyRoundRobin)
		p.Home = 0x99
		if err := r.hs.Register(ctx, "pool", p); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := net.Dial("tcp", ln.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { r.serveASAP(c, func() { close(done) }) }()
	if tt, ok := t.(interface{ Cleanup(func()) }); ok {
		tt.Cleanup(func() { nc.Close(); <-done })
	}
	return nc
}

// roundTrip writes req and reads one ASAP message into buf.
func roundTrip(nc net.Conn, req, buf []byte) ([]byte, error) {
	if _, err := nc.Write(req); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(nc, buf[:4]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(buf[2:4]))
	n = (n + 3) &^ 3
	if _, err := io.ReadFull(nc, buf[4:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// Ensure the registrar answers a handle resolution over TCP without
// allocating: the connection receives into its own buffer, the request
// is read in place, the handle looked up among the connection's, the
// answer built into the connection's send buffer and written at once.
// AllocsPerRun counts every goroutine's allocations (the serving one's
// too), averaged over the runs and rounded down: the budget is zero per
// request.
func TestResolve_NoAllocationPerRequest(t *testing.T) {
	// No per-connection resolution limit: beyond it requests are dropped.
	r := unitRegistrar(t, nil, func(r *Registrar) {
		r.cfg.ResolutionRate = 0
		r.limits = newRateLimits(r.cfg)
	})
	nc := resolveOverTCP(t, r, 5)
	// A request that is not answered fails the test instead of hanging it.
	if err := nc.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		t.Fatal(err)
	}
	req, err := asap.Pack(&asap.HandleResolution{PoolHandle: "pool", HasItems: true, Items: 3})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	resp, err := roundTrip(nc, req, buf)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := asap.Unpack(resp, nil)
	if hr, ok := m.(*asap.HandleResolutionResponse); err != nil || !ok || hr.Error != nil || len(hr.PEs) != 3 {
		t.Fatalf("answer %+v, %v: want 3 PEs", m, err)
	}
	allocs := testing.AllocsPerRun(2000, func() {
		if _, err := roundTrip(nc, req, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%.0f allocations per resolution (client and registrar), want 0", allocs)
	}
}
