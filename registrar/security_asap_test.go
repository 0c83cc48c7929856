package registrar_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// dialFrom connects a client to the registrar's ASAP port from a local
// address of its own (another host on the loopback network).
func dialFrom(t *testing.T, r *testRegistrar, local string) *client {
	t.Helper()
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	cfg.LocalAddrs = []netip.Addr{netip.MustParseAddr(local)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := transport.Dial(ctx, r.ASAPAddr(), cfg)
	if err != nil {
		t.Skipf("cannot bind %s for a second loopback host: %v", local, err)
	}
	cl := &client{t: t, c: c, in: make(chan asap.Message, 64), ka: make(chan *asap.EndpointKeepAlive, 64)}
	go cl.readLoop()
	t.Cleanup(func() { c.Close() })
	return cl
}

// Ensure that over real sockets a hand-sent ASAP_DEREGISTRATION from a
// fresh connection of another host does not empty the pool (Rejection
// due to Security Considerations), nor does its registration of the PE's
// ID replace the PE's port (Non-unique PE Identifier), and that the PE
// itself, reconnecting after a restart, re-registers and deregisters.
func TestASAP_ForeignDeregistrationRefused(t *testing.T) {
	r := startRegistrar(t, "", nil)
	pe := dial(t, r, true)
	mustRegister(t, pe, "svc", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))

	evil := dialFrom(t, r, "127.0.0.2")
	resp, ok := evil.call(&asap.Deregistration{PoolHandle: "svc", ID: 1}).(*asap.DeregistrationResponse)
	if !ok || resp.Error == nil || resp.Error.First() != asap.CauseRejectedSecurity {
		t.Fatalf("a foreign deregistration: got %+v, want a response with cause 0x000a", resp)
	}
	hijack := testPE(1, 6666, asap.Policy{Type: asap.PolicyRoundRobin})
	hijack.User.Addrs = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
	if rr := register(t, evil, "svc", hijack); !rr.Reject || rr.Error.First() != asap.CauseNonUniquePEIdentifier {
		t.Fatalf("a foreign registration of the PE's ID: got reject %v error %v, want cause 0x0004", rr.Reject, rr.Error)
	}
	pu := dial(t, r, false)
	res := resolve(t, pu, "svc", 0)
	if len(res.PEs) != 1 || res.PEs[0].User.Port != 7001 {
		t.Fatalf("after the refused requests the pool resolves to %+v, want the PE on port 7001", res.PEs)
	}

	// The PE restarts: a new connection from its address.
	pe.c.Close()
	again := dial(t, r, true)
	mustRegister(t, again, "svc", testPE(1, 7002, asap.Policy{Type: asap.PolicyRoundRobin}))
	if res := resolve(t, pu, "svc", 0); len(res.PEs) != 1 || res.PEs[0].User.Port != 7002 {
		t.Fatalf("after the restarted PE re-registered the pool resolves to %+v, want port 7002", res.PEs)
	}
	if resp, _ := again.call(&asap.Deregistration{PoolHandle: "svc", ID: 1}).(*asap.DeregistrationResponse); resp == nil || resp.Error != nil {
		t.Fatalf("the PE's own deregistration: %+v", resp)
	}
	if res := resolve(t, pu, "svc", 0); res.Error == nil {
		t.Fatalf("after the PE's own deregistration the pool still resolves to %+v", res.PEs)
	}
}
