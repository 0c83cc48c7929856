package pu_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/pu"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
	"github.com/rserpool-go/registrar/transport"
)

func ids(pes []asap.PoolElement) []uint32 {
	var out []uint32
	for _, p := range pes {
		out = append(out, p.ID)
	}
	return out
}

func TestUser_ResolveCache(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	startPE(t, r, "echo", 1)
	u := newUser(t, func(c *pu.Config) { c.CacheTime = 300 * time.Millisecond }, r.ASAPAddr())
	ctx := ctxTimeout(t, 10*time.Second)
	pes, err := u.Resolve(ctx, "echo")
	if err != nil || len(pes) != 1 || pes[0].ID != 1 {
		t.Fatalf("Resolve: got %v, %v, want PE 1", ids(pes), err)
	}
	if p := pes[0]; p.User.Kind != asap.ParamTCPTransport || p.User.Use != asap.UseDataAndControl || p.Home != r.ID() {
		t.Errorf("resolved PE: got %+v", p)
	}
	startPE(t, r, "echo", 2)
	if pes, _ := u.Resolve(ctx, "echo"); len(pes) != 1 {
		t.Errorf("Resolve within the cache time: got %v, want the cached PE 1 only", ids(pes))
	}
	waitFor(t, 5*time.Second, "the cache to go stale and the new PE to show", func() bool {
		pes, err := u.Resolve(ctx, "echo")
		return err == nil && len(pes) == 2
	})
	// While cached, successive resolutions rotate.
	a, _ := u.Resolve(ctx, "echo")
	b, _ := u.Resolve(ctx, "echo")
	if len(a) != 2 || len(b) != 2 || a[0].ID != b[1].ID || a[1].ID != b[0].ID {
		t.Errorf("successive cached resolutions: got %v then %v, want a rotation", ids(a), ids(b))
	}
}

func TestUser_NoCache(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	startPE(t, r, "echo", 1)
	u := newUser(t, func(c *pu.Config) { c.CacheTime = 0; c.Items = asap.ItemsAll }, r.ASAPAddr())
	ctx := ctxTimeout(t, 10*time.Second)
	if pes, err := u.Resolve(ctx, "echo"); err != nil || len(pes) != 1 {
		t.Fatalf("Resolve: got %v, %v", ids(pes), err)
	}
	startPE(t, r, "echo", 2)
	if pes, err := u.Resolve(ctx, "echo"); err != nil || len(pes) != 2 {
		t.Fatalf("Resolve without a cache: got %v, %v, want both PEs at once", ids(pes), err)
	}
}

func TestUser_UnknownPool(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	u := newUser(t, nil, r.ASAPAddr())
	_, err := u.Resolve(ctxTimeout(t, 10*time.Second), "nopool")
	var upe *pu.UnknownPoolError
	if !errors.Is(err, pu.ErrUnknownPool) || !errors.As(err, &upe) || !strings.Contains(err.Error(), `pool "nopool" is unknown`) {
		t.Fatalf("Resolve of an unknown pool: got %v, want ErrUnknownPool", err)
	}
	if _, err := u.Connect(ctxTimeout(t, 10*time.Second), "nopool", pu.DefaultSessionConfig()); !errors.Is(err, pu.ErrUnknownPool) {
		t.Fatalf("Connect to an unknown pool: got %v, want ErrUnknownPool", err)
	}
}

// The reports reach the registrar, which counts them and probes the PE
// with a keep-alive; a PE that answers stays (one PU cannot remove a live
// PE; registrar's TestUnreachableReports covers the removals).
func TestUser_ReportUnreachable(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	p := startPE(t, r, "echo", 7)
	u := newUser(t, nil, r.ASAPAddr())
	ctx := ctxTimeout(t, 10*time.Second)
	for i := 0; i < 3; i++ {
		if err := u.ReportUnreachable(ctx, "echo", p.el.ID()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the registrar to count the three reports", func() bool {
		return registrartest.Metric(t, r.HTTPAddr(), `rsp_unreachable_reports_total{result="counted"}`) == 3
	})
	if _, ok := r.Handlespace().Lookup("echo", p.el.ID()); !ok {
		t.Fatal("one PU's reports removed a PE that answers keep-alives")
	}
}

func TestUser_NoRegistrar(t *testing.T) {
	sharedtest.CheckLeaks(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "tcp:" + l.Addr().String()
	l.Close()
	u := newUser(t, nil, addr)
	_, err = u.Resolve(ctxTimeout(t, 10*time.Second), "echo")
	if !errors.Is(err, pu.ErrNoRegistrar) || !strings.Contains(err.Error(), "tried "+addr+": connection refused") {
		t.Fatalf("Resolve without a registrar: got %v, want ErrNoRegistrar naming %s", err, addr)
	}
}

// A registrar heard in SERVER_ANNOUNCE is used; no address is configured.
func TestUser_Announce(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	startPE(t, r, "echo", 1)
	group := fmt.Sprintf("239.0.0.79:%d", 20000+os.Getpid()%20000)
	mc := transport.DefaultMulticastConfig()
	mc.TTL, mc.Interface, mc.SendOnly = 0, "lo", true
	tx, err := transport.OpenMulticast(context.Background(), group, mc)
	if err != nil {
		t.Skipf("no multicast here: %v", err)
	}
	defer tx.Close()
	u, err := pu.New(func() pu.Config {
		c := pu.DefaultConfig()
		c.Announce, c.AnnounceInterface = group, "lo"
		c.Logger = sharedtest.Logger(t, "pu")
		return c
	}())
	if err != nil {
		t.Skipf("cannot join %s on lo: %v", group, err)
	}
	defer u.Close()
	port := r.ASAPAddrs()[0].Port
	ann, err := asap.Pack(&asap.ServerAnnounce{ServerID: r.ID(), Transports: []asap.Transport{
		{Kind: asap.ParamTCPTransport, Port: uint16(port), Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() { // the registrar's announce cycle
		defer close(done)
		for {
			if err := tx.Send(ctx, ann); err != nil && ctx.Err() == nil {
				t.Logf("announce: %v", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	pes, err := u.Resolve(ctxTimeout(t, 10*time.Second), "echo")
	if err != nil || len(pes) != 1 {
		t.Fatalf("Resolve through an announced registrar: got %v, %v", ids(pes), err)
	}
}

// A registrar listening on the wildcard address announces endpoints a PU
// can use (the registrar's announces name the host's addresses).
func TestUser_AnnounceFromWildcardRegistrar(t *testing.T) {
	sharedtest.CheckLeaks(t)
	group := fmt.Sprintf("239.0.0.81:%d", 20000+os.Getpid()%20000)
	r := startRegistrar(t, func(c *registrar.Config) {
		c.ASAP = "tcp::0"
		c.Announce, c.AnnounceInterface, c.AnnounceInterval = group, "lo", registrar.Duration(50*time.Millisecond)
	})
	_ = r
	cfg := pu.DefaultConfig()
	cfg.Announce, cfg.AnnounceInterface = group, "lo"
	cfg.Logger = sharedtest.Logger(t, "pu")
	u, err := pu.New(cfg)
	if err != nil {
		t.Skipf("cannot join %s on lo: %v", group, err)
	}
	defer u.Close()
	_, err = u.Resolve(ctxTimeout(t, 10*time.Second), "nopool")
	if !errors.Is(err, pu.ErrUnknownPool) {
		t.Fatalf("resolution through the announced registrar: got %v, want the registrar's answer (unknown pool)", err)
	}
}
