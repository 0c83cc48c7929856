package registrar_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/transport"
)

// rttNetwork is the OS network whose connections report a fixed
// round-trip time (transport.RTT), as a far-away peer's would.
type rttNetwork struct{ rtt time.Duration }

type rttConn struct {
	transport.Conn
	rtt time.Duration
}

func (c rttConn) RTT() (time.Duration, bool) { return c.rtt, true }

type rttListener struct {
	transport.Listener
	rtt time.Duration
}

func (l rttListener) Accept(ctx context.Context) (transport.Conn, error) {
	c, err := l.Listener.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return rttConn{c, l.rtt}, nil
}

func (n rttNetwork) Listen(ctx context.Context, spec string, cfg transport.Config) (transport.Listener, error) {
	l, err := transport.Listen(ctx, spec, cfg)
	if err != nil {
		return nil, err
	}
	return rttListener{l, n.rtt}, nil
}

func (n rttNetwork) Dial(ctx context.Context, spec string, cfg transport.Config) (transport.Conn, error) {
	c, err := transport.Dial(ctx, spec, cfg)
	if err != nil {
		return nil, err
	}
	return rttConn{c, n.rtt}, nil
}

// Ensure that the registrar sets the distance of a DPF policy to half the
// round-trip time of the PE's association (to the nearest 50 ms), whatever
// the PE sent, leaves other policies alone, and that an ENRP peer adds
// its own distance to the registrar's, over HANDLE_UPDATE and over the
// handle table of its first sync, as RSPLIB does.
func TestDistanceMeasured(t *testing.T) {
	a := startRegistrar(t, "", func(c *registrar.Config) {
		fastPeering(c)
		c.Network = rttNetwork{240 * time.Millisecond} // distance 100 ms
	})
	cl := dial(t, a, true)
	lu := asap.Policy{Type: asap.PolicyLeastUsedDPF, Load: 7, LoadDPF: 9, Distance: 500}
	mustRegister(t, cl, "dpf", testPE(1, 7001, lu))
	mustRegister(t, cl, "rr", testPE(2, 7002, asap.Policy{Type: asap.PolicyRoundRobin}))
	got := resolve(t, cl, "dpf", 1)
	if len(got.PEs) != 1 || got.PEs[0].Policy.Distance != 100 || got.PEs[0].Policy.Load != 7 || got.PEs[0].Policy.LoadDPF != 9 {
		t.Fatalf("resolution of the LU-DPF PE: %+v; want distance 100 (half of 240 ms to 50 ms) and its values", got.PEs)
	}
	if rr := resolve(t, cl, "rr", 1); len(rr.PEs) != 1 || !reflect.DeepEqual(rr.PEs[0].Policy, asap.Policy{Type: asap.PolicyRoundRobin}) {
		t.Errorf("a round robin PE: %+v; want its policy unchanged", rr.PEs)
	}
	// A re-registration measuring the same distance changes nothing.
	mustRegister(t, cl, "dpf", testPE(1, 7001, lu))

	// B peers with A over associations of 100 ms (50 ms): the first sync
	// brings PE 1, an update PE 3; both at 100 + 50 ms.
	b := startRegistrar(t, "", func(c *registrar.Config) {
		fastPeering(c)
		c.Network = rttNetwork{100 * time.Millisecond}
		c.ENRPPeers = []string{a.ENRPAddrs()[0].Network() + ":" + a.ENRPAddrs()[0].String()}
	})
	distanceAtB := func(id uint32) uint32 {
		pe, ok := b.Handlespace().Lookup("dpf", id)
		if !ok {
			return 0
		}
		return pe.Element.Policy.Distance
	}
	waitValue(t, 10*time.Second, "PE 1's distance at B after the sync", func() uint32 { return distanceAtB(1) }, 150)
	mustRegister(t, cl, "dpf", testPE(3, 7003, lu))
	waitValue(t, 10*time.Second, "PE 3's distance at B after its HANDLE_UPDATE", func() uint32 { return distanceAtB(3) }, 150)
	if pe, _ := a.Handlespace().Lookup("dpf", 3); pe.Element.Policy.Distance != 100 {
		t.Errorf("PE 3 at its home: distance %d, want 100", pe.Element.Policy.Distance)
	}
}
