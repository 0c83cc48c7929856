package regclient

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

func TestSpecsOf(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.1:3863")
	for _, tc := range []struct {
		name string
		sa   asap.ServerAnnounce
		want []string
	}{
		{"RSPLIB: no transports, the UDP source stands for the SCTP endpoint", asap.ServerAnnounce{ServerID: 1}, []string{"192.0.2.1:3863"}},
		{"ours: TCP and SCTP endpoints", asap.ServerAnnounce{ServerID: 1, Transports: []asap.Transport{
			{Kind: asap.ParamTCPTransport, Port: 3863, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
			{Kind: asap.ParamSCTPTransport, Port: 3863, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")}},
		}}, []string{"tcp:10.0.0.1:3863", "10.0.0.1,[2001:db8::1]:3863"}},
		{"unusable transports only", asap.ServerAnnounce{ServerID: 1, Transports: []asap.Transport{
			{Kind: asap.ParamUDPTransport, Port: 3863, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
			{Kind: asap.ParamTCPTransport, Port: 3863, Addrs: []netip.Addr{netip.IPv4Unspecified()}},
		}}, nil},
	} {
		got := specsOf(&tc.sa, src)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestAnnouncesExpire(t *testing.T) {
	a := &announces{timeout: 5 * time.Second, log: hclog.NewNullLogger(), entries: map[string]*announced{}, changed: make(chan struct{})}
	t0 := time.Now()
	src := netip.MustParseAddrPort("192.0.2.1:3863")
	_, changed := a.list(t0, 0)
	a.add(&asap.ServerAnnounce{ServerID: 0xA}, src, t0)
	select {
	case <-changed:
	default:
		t.Error("a new registrar did not signal the change")
	}
	a.add(&asap.ServerAnnounce{ServerID: 0xB}, netip.MustParseAddrPort("192.0.2.2:3863"), t0.Add(2*time.Second))
	got, _ := a.list(t0.Add(3*time.Second), 0)
	if len(got) != 2 || got[0].id != 0xB {
		t.Errorf("list: got %+v, want B (heard last) then A", got)
	}
	if got, _ := a.list(t0.Add(3*time.Second), 0xA); got[0].id != 0xA {
		t.Errorf("list preferring A: got %+v, want A first", got)
	}
	if got, _ := a.list(t0.Add(6*time.Second), 0); len(got) != 1 || got[0].id != 0xB {
		t.Errorf("list after T7 for A: got %+v, want B only", got)
	}
	if id := a.idOf("192.0.2.2:3863"); id != 0xB {
		t.Errorf("idOf: got %x, want b", id)
	}
}

func TestNoRegistrarError(t *testing.T) {
	e := &NoRegistrarError{Tried: []Attempt{{Registrar: "tcp:127.0.0.1:3863", Err: errors.New("x")}}}
	if !errors.Is(e, ErrNoRegistrar) || e.Error() != "no registrar answered (tried tcp:127.0.0.1:3863: x): check the registrar addresses, or that announces reach this host" {
		t.Errorf("got %q", e)
	}
	e = &NoRegistrarError{Announce: "239.0.0.50:3863", Waited: 5 * time.Second}
	if !strings.Contains(e.Error(), "no announce heard on 239.0.0.50:3863 within 5s") {
		t.Errorf("got %q", e)
	}
}

// fakeRegistrar answers handle resolutions on a MemNetwork listener,
// ignoring the first drop of them.
func fakeRegistrar(t *testing.T, n *transport.MemNetwork, name string, drop int32, id uint32) *atomic.Int32 {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	l, err := n.Listen(context.Background(), name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int32
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		c, err := l.Accept(context.Background())
		if err != nil {
			return
		}
		defer c.Close()
		for {
			_, b, err := c.Recv(context.Background())
			if err != nil {
				return
			}
			m, _, _ := asap.Unpack(b, nil)
			hr, ok := m.(*asap.HandleResolution)
			if !ok {
				continue
			}
			if seen.Add(1) <= drop {
				continue
			}
			resp, _ := asap.Pack(&asap.HandleResolutionResponse{PoolHandle: hr.PoolHandle, Policy: asap.Policy{Type: asap.PolicyRoundRobin},
				PEs: []asap.PoolElement{{ID: id, Lifetime: 1000, Policy: asap.Policy{Type: asap.PolicyRoundRobin},
					User: asap.Transport{Kind: asap.ParamTCPTransport, Port: 1, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}}}})
			if c.Send(context.Background(), transport.PPIDASAP, resp) != nil {
				return
			}
		}
	}()
	return &seen
}

func newTestClient(t *testing.T, n *transport.MemNetwork, retries int, regs ...string) *Client {
	c, err := New(Config{Settings: Settings{Registrars: regs, AnnounceTimeout: time.Second, RequestTimeout: 100 * time.Millisecond,
		RequestRetries: retries, DialTimeout: time.Second, Network: n}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func resolve(c *Client) (uint32, error) {
	resp, _, err := c.Request(context.Background(),
		func(*Conn) (asap.Message, error) { return &asap.HandleResolution{PoolHandle: "p"}, nil },
		func(m asap.Message) bool { _, ok := m.(*asap.HandleResolutionResponse); return ok })
	if err != nil {
		return 0, err
	}
	return resp.(*asap.HandleResolutionResponse).PEs[0].ID, nil
}

// A request not answered in time is sent again to the same registrar.
func TestRequestRetry(t *testing.T) {
	n := transport.NewMemNetwork()
	seen := fakeRegistrar(t, n, "a:1", 1, 0xA)
	c := newTestClient(t, n, 1, "a:1")
	if id, err := resolve(c); err != nil || id != 0xA || seen.Load() != 2 {
		t.Fatalf("got %x, %v after %d requests, want the answer to the second", id, err, seen.Load())
	}
}

// Without an answer after the retries, the next registrar is tried; the
// error names every registrar when none answers.
func TestRequestHunt(t *testing.T) {
	n := transport.NewMemNetwork()
	seenA := fakeRegistrar(t, n, "a:1", 100, 0xA)
	fakeRegistrar(t, n, "b:1", 0, 0xB)
	c := newTestClient(t, n, 1, "a:1", "b:1")
	if id, err := resolve(c); err != nil || id != 0xB || seenA.Load() != 2 {
		t.Fatalf("got %x, %v (a saw %d requests), want b's answer after 2 requests to a", id, err, seenA.Load())
	}
	if cur := c.Current(); cur == nil || cur.Name() != "b:1" {
		t.Errorf("current registrar: got %v, want b:1", cur)
	}

	c2 := newTestClient(t, transport.NewMemNetwork(), 0, "x:1", "y:1")
	_, err := resolve(c2)
	if !errors.Is(err, ErrNoRegistrar) || !strings.Contains(err.Error(), "tried x:1: ") || !strings.Contains(err.Error(), ", y:1: ") {
		t.Fatalf("no registrar: got %v", err)
	}
}
